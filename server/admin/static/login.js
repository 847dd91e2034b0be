// The login form: POST /api/login, then the peer page. A wrong password or the rate
// limit is shown in the form's alert.
'use strict';
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('login-error');
  error.textContent = '';
  const password = document.getElementById('password').value;
  try {
    const r = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password }) });
    if (r.ok) {
      location.assign('/');
      return;
    }
    const body = await r.json().catch(() => ({}));
    error.textContent = body.message || `login failed (${r.status})`;
  } catch (e) {
    error.textContent = `the server did not answer: ${e.message}`;
  }
});
