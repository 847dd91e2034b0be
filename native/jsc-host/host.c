// burrow-jsc-host: the Burrow core (dist/jsc/burrow.js) inside JavaScriptCore's C API,
// playing on Linux the part NEPacketTunnelProvider plays on a Mac (native/apple/):
//   - opens the TUN (the utun the system would hand over) and one UDP socket;
//   - evaluates the bundle in a bare JSGlobalContext and calls Burrow.start(config),
//     which answers with the TunnelSettings and the NEPacketTunnelNetworkSettings JSON;
//     applies the latter as the Mac's system would (src/apple/linux-commands.ts): the
//     addresses, MTU, included routes (a default route too), the excluded routes pinned
//     outside the tunnel, and the DNS servers in the namespace's resolv.conf;
//   - undoes what outlives the TUN (the pinned routes, resolv.conf) when it stops: on
//     SIGTERM/SIGINT, on a fatal error, and, after a SIGKILL, at its next start or with
//     --recover, from the state file it writes before each change
//     (/run/burrow/IFNAME.jsc-host.state);
//   - a poll loop: a batch of TUN packets -> Burrow.packets, a batch of datagrams
//     (recvmmsg) -> Burrow.datagrams, the one timer -> Burrow.timer;
//   - gives the core getrandom(2), CLOCK_MONOTONIC, sendto/write, and optionally
//     OpenSSL's ChaCha20-Poly1305 and X25519 through the engine's Aead and Dh seams
//     (CryptoKit on a Mac).
// The batch arenas are the host's memory, wrapped once as typed arrays without copies.
//
// Usage: burrow-jsc-host --bundle FILE --config FILE --ifname NAME
//                        [--endpoints JSON] [--aead noble|openssl] [--dh noble|openssl] [--no-apply]
//        burrow-jsc-host --ifname NAME --recover
// A line on stdin prints Burrow.status() as one JSON line; SIGTERM/SIGINT stop it.
// DNS is written only to a resolv.conf that `ip netns exec` bind-mounted
// (/etc/netns/NAME/resolv.conf), never to the host's own: a configuration with DNS
// servers is refused elsewhere.
// Not SIGUSR1: WebKit's WTF suspends threads with it for the garbage collector, and a
// handler of ours there deadlocks the next collection (seen: a hang in Heap::acquireAccess).

#define _GNU_SOURCE
#include <JavaScriptCore/JavaScript.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define HEADROOM 16
#define ADDR_STRIDE 20
#define UDP_SLOT 2048

static JSGlobalContextRef ctx;
static JSObjectRef burrow, fn_packets, fn_datagrams, fn_timer, fn_status;
static int tun_fd = -1, udp_fd = -1;
static double armed_at = -1; // monotonic ms of the next timer; -1: none
static volatile sig_atomic_t stop_requested;
static EVP_CIPHER_CTX *evp;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static char *js_string(JSValueRef v) {
  JSStringRef s = JSValueToStringCopy(ctx, v, NULL);
  size_t n = JSStringGetMaximumUTF8CStringSize(s);
  char *out = malloc(n);
  JSStringGetUTF8CString(s, out, n);
  JSStringRelease(s);
  return out;
}

static void check(JSValueRef exception, const char *where) {
  if (exception == NULL) return;
  char *msg = js_string(exception);
  fprintf(stderr, "burrow-jsc-host: %s: %s\n", where, msg);
  free(msg);
  exit(1);
}

static JSObjectRef get_function(JSObjectRef obj, const char *name) {
  JSStringRef n = JSStringCreateWithUTF8CString(name);
  JSValueRef exc = NULL;
  JSValueRef v = JSObjectGetProperty(ctx, obj, n, &exc);
  JSStringRelease(n);
  check(exc, name);
  if (!JSValueIsObject(ctx, v)) { fprintf(stderr, "burrow-jsc-host: %s is missing\n", name); exit(1); }
  JSObjectRef f = JSValueToObject(ctx, v, NULL);
  JSValueProtect(ctx, f);
  return f;
}

/** The bytes of a typed array argument: its buffer plus its offset (no copy). */
static uint8_t *bytes_of(JSValueRef v, size_t *length) {
  JSValueRef exc = NULL;
  JSObjectRef o = JSValueToObject(ctx, v, &exc);
  check(exc, "typed array");
  uint8_t *base = JSObjectGetTypedArrayBytesPtr(ctx, o, &exc);
  check(exc, "typed array bytes");
  *length = JSObjectGetTypedArrayByteLength(ctx, o, NULL);
  return base + JSObjectGetTypedArrayByteOffset(ctx, o, NULL);
}

static void set_function(JSObjectRef obj, const char *name, JSObjectCallAsFunctionCallback cb) {
  JSStringRef n = JSStringCreateWithUTF8CString(name);
  JSObjectSetProperty(ctx, obj, n, JSObjectMakeFunctionWithCallback(ctx, n, cb), kJSPropertyAttributeNone, NULL);
  JSStringRelease(n);
}

static void set_value(JSObjectRef obj, const char *name, JSValueRef v) {
  JSStringRef n = JSStringCreateWithUTF8CString(name);
  JSObjectSetProperty(ctx, obj, n, v, kJSPropertyAttributeNone, NULL);
  JSStringRelease(n);
}

// --- host callbacks --------------------------------------------------------------

static JSValueRef cb_random(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)argc; (void)exc;
  size_t n;
  uint8_t *p = bytes_of(argv[0], &n);
  for (size_t off = 0; off < n;) {
    ssize_t r = getrandom(p + off, n - off, 0);
    if (r < 0) { if (errno == EINTR) continue; die("getrandom"); }
    off += (size_t)r;
  }
  return JSValueMakeUndefined(ctx);
}

static JSValueRef cb_send(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)argc; (void)exc;
  size_t n;
  uint8_t *p = bytes_of(argv[0], &n);
  char *host = js_string(argv[1]);
  int port = (int)JSValueToNumber(ctx, argv[2], NULL);
  struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
  struct in_addr v4;
  if (inet_pton(AF_INET, host, &v4) == 1) {
    to.sin6_addr.s6_addr[10] = 0xff; to.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&to.sin6_addr.s6_addr[12], &v4, 4);
  } else if (inet_pton(AF_INET6, host, &to.sin6_addr) != 1) {
    fprintf(stderr, "burrow-jsc-host: bad endpoint %s\n", host);
  }
  free(host);
  if (sendto(udp_fd, p, n, 0, (struct sockaddr *)&to, sizeof to) < 0 && errno != EAGAIN && errno != ENOBUFS) perror("sendto");
  return JSValueMakeUndefined(ctx);
}

static JSValueRef cb_write(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)argc; (void)exc;
  size_t n;
  uint8_t *p = bytes_of(argv[0], &n);
  if (write(tun_fd, p, n) < 0 && errno != EAGAIN && errno != EINVAL) perror("write tun");
  return JSValueMakeUndefined(ctx);
}

static JSValueRef cb_arm(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)argc; (void)exc;
  double delay = JSValueToNumber(ctx, argv[0], NULL);
  armed_at = delay < 0 ? -1 : now_ms() + delay;
  return JSValueMakeUndefined(ctx);
}

static JSValueRef cb_log(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)argc; (void)exc;
  char *line = js_string(argv[0]);
  fprintf(stderr, "burrow-jsc-host: %s\n", line);
  free(line);
  return JSValueMakeUndefined(ctx);
}

// OpenSSL ChaCha20-Poly1305 with WireGuard's nonce: 4 zero bytes, the counter little-endian.
static int openssl_aead(int enc, JSValueRef const argv[], uint8_t **out_p, size_t *out_n) {
  size_t kn, in_n, aad_n;
  uint8_t *key = bytes_of(argv[0], &kn);
  double counter = JSValueToNumber(ctx, argv[1], NULL);
  uint8_t *in = bytes_of(argv[2], &in_n);
  uint8_t *aad = bytes_of(argv[3], &aad_n);
  uint8_t *out = bytes_of(argv[4], out_n);
  *out_p = out;
  if (kn != 32 || (enc ? *out_n != in_n + 16 : in_n < 16 || *out_n != in_n - 16)) return 0;
  uint8_t nonce[12] = { 0 };
  uint64_t ctr = (uint64_t)counter;
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(ctr >> (8 * i));
  size_t body = enc ? in_n : in_n - 16;
  int len = 0;
  if (!EVP_CipherInit_ex(evp, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc)) return 0;
  if (!EVP_CipherInit_ex(evp, NULL, NULL, key, nonce, enc)) return 0;
  if (aad_n > 0 && !EVP_CipherUpdate(evp, NULL, &len, aad, (int)aad_n)) return 0;
  if (!enc) {
    // The tag first: the decryption below may overwrite it when done in place.
    uint8_t tag[16];
    memcpy(tag, in + body, 16);
    if (!EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_AEAD_SET_TAG, 16, tag)) return 0;
  }
  if (body > 0 && !EVP_CipherUpdate(evp, out, &len, in, (int)body)) return 0;
  if (EVP_CipherFinal_ex(evp, out + body, &len) != 1) return 0;
  if (enc && !EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_AEAD_GET_TAG, 16, out + body)) return 0;
  return 1;
}

static JSValueRef cb_seal(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)exc;
  uint8_t *out; size_t n;
  if (argc < 5 || !openssl_aead(1, argv, &out, &n)) { fprintf(stderr, "burrow-jsc-host: seal failed\n"); exit(1); }
  return argv[4];
}

static JSValueRef cb_open(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)exc;
  uint8_t *out; size_t n;
  return JSValueMakeBoolean(ctx, argc >= 5 && openssl_aead(0, argv, &out, &n));
}

// X25519 from OpenSSL (CryptoKit's Curve25519 on a Mac): out = X25519(scalar, point).
// The base point answers with the public key; OpenSSL refuses an all-zero result.
static JSValueRef cb_x25519(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)exc;
  if (argc < 3) return JSValueMakeBoolean(ctx, false);
  size_t kn, pn, on;
  uint8_t *k = bytes_of(argv[0], &kn), *p = bytes_of(argv[1], &pn), *out = bytes_of(argv[2], &on);
  if (kn != 32 || pn != 32 || on != 32) return JSValueMakeBoolean(ctx, false);
  EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k, 32);
  if (!priv) return JSValueMakeBoolean(ctx, false);
  int base = p[0] == 9;
  for (int i = 1; i < 32 && base; i++) base = p[i] == 0;
  int ok = 0;
  size_t len = 32;
  if (base) {
    ok = EVP_PKEY_get_raw_public_key(priv, out, &len) == 1;
  } else {
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, p, 32);
    EVP_PKEY_CTX *d = peer ? EVP_PKEY_CTX_new(priv, NULL) : NULL;
    ok = d && EVP_PKEY_derive_init(d) == 1 && EVP_PKEY_derive_set_peer(d, peer) == 1 && EVP_PKEY_derive(d, out, &len) == 1 && len == 32;
    EVP_PKEY_CTX_free(d);
    EVP_PKEY_free(peer);
  }
  EVP_PKEY_free(priv);
  return JSValueMakeBoolean(ctx, ok);
}

// --- setup -------------------------------------------------------------------------

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) die(path);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static int open_tun(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("/dev/net/tun");
  struct ifreq ifr = { 0 };
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
  return fd;
}

static int open_udp(int port, int fwmark) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int off = 0, buf = 4 << 20;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (fwmark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark) < 0) die("SO_MARK");
  struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_ANY_INIT };
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  return fd;
}

// --- applying the settings, and taking them back ----------------------------------

#define RESOLV_CONF "/etc/resolv.conf"
#define STATE_DIR "/run/burrow"
#define STATE_FORMAT "burrow-jsc-host-state/1"
#define MAX_TEXT (1 << 20)

static const char *ifname;
static char state_path[256];
static char ***undos; // `ip` arguments (argv[0] is "ip"), in the order the changes were made
static int n_undos;
static char *resolv_original, *resolv_written; // set once resolv.conf has been written
static int applied; // this host has begun to change the system: the state file is its own

/**
 * Runs `ip ARGS` (argv[0] is "ip") and waits for it. With `out`, its standard output is
 * collected there (NUL-terminated, at most MAX_TEXT bytes) and its errors are dropped.
 * Returns its exit status, or -1 when it did not run or was killed.
 */
static int run_ip(char *const argv[], char **out) {
  int fds[2] = { -1, -1 };
  if (out && pipe2(fds, O_CLOEXEC) < 0) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (out) {
      dup2(fds[1], STDOUT_FILENO);
      int null = open("/dev/null", O_WRONLY);
      if (null >= 0) dup2(null, STDERR_FILENO);
    } else {
      dup2(STDERR_FILENO, STDOUT_FILENO); // our stdout carries only the settings and status lines
    }
    execvp("ip", argv);
    _exit(127);
  }
  if (out) {
    close(fds[1]);
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    for (;;) {
      if (n + 1 == cap && cap < MAX_TEXT) buf = realloc(buf, cap *= 2);
      if (n + 1 == cap) break;
      ssize_t r = read(fds[0], buf + n, cap - n - 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      n += (size_t)r;
    }
    buf[n] = 0;
    close(fds[0]);
    *out = buf;
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void print_argv(const char *what, char *const argv[]) {
  fprintf(stderr, "burrow-jsc-host: %s:", what);
  for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
  fprintf(stderr, "\n");
}

/** `ip ARGS` for the core (Burrow.linuxCommands' query): its output, or null when it failed. */
static JSValueRef cb_ip_query(JSContextRef c, JSObjectRef f, JSObjectRef t, size_t argc, const JSValueRef argv[], JSValueRef *exc) {
  (void)c; (void)f; (void)t; (void)exc;
  if (argc < 1) return JSValueMakeNull(ctx);
  JSObjectRef list = JSValueToObject(ctx, argv[0], NULL);
  JSStringRef len_name = JSStringCreateWithUTF8CString("length");
  int n = (int)JSValueToNumber(ctx, JSObjectGetProperty(ctx, list, len_name, NULL), NULL);
  JSStringRelease(len_name);
  char **args = calloc((size_t)n + 2, sizeof *args);
  args[0] = strdup("ip");
  for (int i = 0; i < n; i++) args[i + 1] = js_string(JSObjectGetPropertyAtIndex(ctx, list, (unsigned)i, NULL));
  char *out = NULL;
  int status = run_ip(args, &out);
  for (int i = 0; i <= n; i++) free(args[i]);
  free(args);
  JSValueRef result = JSValueMakeNull(ctx);
  if (status == 0) {
    JSStringRef s = JSStringCreateWithUTF8CString(out);
    result = JSValueMakeString(ctx, s);
    JSStringRelease(s);
  }
  free(out);
  return result;
}

/** The whole of a small text file, or NULL when it cannot be read. */
static char *slurp(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t n = 0, cap = 4096;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 1 == cap && cap < MAX_TEXT) buf = realloc(buf, cap *= 2);
    if (n + 1 == cap) break;
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { free(buf); close(fd); return NULL; }
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  close(fd);
  return buf;
}

/** Rewrites an existing file in place (truncated, never replaced: it is a bind mount). */
static int rewrite(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = strlen(text), off = 0;
  while (off < n) {
    ssize_t w = write(fd, text + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { close(fd); return -1; }
    off += (size_t)w;
  }
  return close(fd);
}

/**
 * True when this process runs in a namespace `ip netns` manages (its /proc/self/ns/net
 * is the file /run/netns/NAME, as `ip netns identify` finds it) and /etc/resolv.conf
 * (where its symlinks lead, as mount(2) follows them) is /etc/netns/NAME/resolv.conf
 * bind-mounted there by `ip netns exec NAME`. The host's own resolver is never written.
 */
static int resolv_conf_is_namespace_mount(void) {
  struct stat self, st;
  if (stat("/proc/self/ns/net", &self) < 0) return 0;
  DIR *d = opendir("/run/netns");
  if (!d) return 0;
  char name[NAME_MAX + 1] = { 0 }, path[PATH_MAX];
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/run/netns/%s", e->d_name);
    if (stat(path, &st) == 0 && st.st_dev == self.st_dev && st.st_ino == self.st_ino) {
      snprintf(name, sizeof name, "%s", e->d_name);
      break;
    }
  }
  closedir(d);
  char real[PATH_MAX], want[PATH_MAX];
  if (!name[0] || !realpath(RESOLV_CONF, real)) return 0;
  snprintf(want, sizeof want, "/netns/%s/resolv.conf", name);
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (!f) return 0;
  char line[2 * PATH_MAX + 256], root[PATH_MAX], point[PATH_MAX];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2 || strcmp(point, real)) continue;
    size_t r = strlen(root), w = strlen(want);
    found = r >= w && !strcmp(root + r - w, want);
  }
  fclose(f);
  return found;
}

/** Field 22 of /proc/PID/stat, the start time in clock ticks: with the pid, names one process. */
static char *start_time_of(long pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  char *stat = slurp(path);
  if (!stat) return NULL;
  char *p = strrchr(stat, ')');
  char *field = NULL;
  for (int i = 0; p && i < 20; i++) p = strchr(p + 1, ' ');
  if (p) field = strndup(p + 1, strcspn(p + 1, " "));
  free(stat);
  return field;
}

static JSValueRef js_str(const char *text) {
  JSStringRef s = JSStringCreateWithUTF8CString(text);
  JSValueRef v = JSValueMakeString(ctx, s);
  JSStringRelease(s);
  return v;
}

/**
 * Writes what is to be undone to the state file before each change, so that a host
 * killed with SIGKILL leaves a record: a temporary file created exclusively (whatever
 * stands at that name unlinked first, never followed), 0600, fsync'd, renamed over the
 * state file, the directory fsync'd. The JSON is JavaScriptCore's own.
 */
static void write_state(void) {
  JSObjectRef o = JSObjectMake(ctx, NULL, NULL);
  set_value(o, "format", js_str(STATE_FORMAT));
  set_value(o, "ifname", js_str(ifname));
  set_value(o, "pid", JSValueMakeNumber(ctx, (double)getpid()));
  char *start = start_time_of((long)getpid());
  if (!start) die("/proc/self/stat");
  set_value(o, "startTime", js_str(start));
  free(start);
  JSValueRef *items = calloc((size_t)n_undos + 1, sizeof *items);
  for (int i = 0; i < n_undos; i++) {
    int argc = 0;
    while (undos[i][argc + 1]) argc++;
    JSValueRef *args = calloc((size_t)argc + 1, sizeof *args);
    for (int j = 0; j < argc; j++) args[j] = js_str(undos[i][j + 1]);
    items[i] = JSObjectMakeArray(ctx, (size_t)argc, args, NULL);
    free(args);
  }
  set_value(o, "undo", JSObjectMakeArray(ctx, (size_t)n_undos, items, NULL));
  free(items);
  if (resolv_written) {
    JSObjectRef r = JSObjectMake(ctx, NULL, NULL);
    set_value(r, "original", js_str(resolv_original));
    set_value(r, "written", js_str(resolv_written));
    set_value(o, "resolvConf", r);
  }
  JSStringRef json = JSValueCreateJSONString(ctx, o, 1, NULL);
  size_t cap = JSStringGetMaximumUTF8CStringSize(json);
  char *text = malloc(cap);
  JSStringGetUTF8CString(json, text, cap);
  JSStringRelease(json);

  char tmp[sizeof state_path + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", state_path);
  if (mkdir(STATE_DIR, 0700) < 0 && errno != EEXIST) die(STATE_DIR);
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) die(tmp);
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) < 0) die(tmp);
  close(fd);
  free(text);
  if (rename(tmp, state_path) < 0) die(state_path);
  int dir = open(STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) { fsync(dir); close(dir); }
}

/** Takes back every recorded change, newest first; what has already gone counts as done. */
static void undo_all(void) {
  for (int i = n_undos - 1; i >= 0; i--) {
    print_argv("undo", undos[i]);
    if (run_ip(undos[i], NULL) != 0) print_argv("already gone (or changed since)", undos[i]);
    for (int j = 0; undos[i][j]; j++) free(undos[i][j]);
    free(undos[i]);
  }
  n_undos = 0;
  if (resolv_written) {
    // Only if the file still holds ours: a newer write is someone else's and stays.
    char *now = slurp(RESOLV_CONF);
    if (now && !strcmp(now, resolv_written)) {
      if (rewrite(RESOLV_CONF, resolv_original) == 0) fprintf(stderr, "burrow-jsc-host: restored %s\n", RESOLV_CONF);
      else perror("restoring " RESOLV_CONF);
    }
    free(now);
    free(resolv_written);
    free(resolv_original);
    resolv_written = resolv_original = NULL;
  }
  unlink(state_path);
}

/** atexit: the TUN goes first (and the routes on it with it), then what outlives it. */
static void stop_platform(void) {
  if (tun_fd >= 0) { close(tun_fd); tun_fd = -1; }
  if (applied) undo_all();
  applied = 0;
}

static char *prop_string(JSObjectRef o, const char *name) {
  JSStringRef n = JSStringCreateWithUTF8CString(name);
  JSValueRef v = JSObjectGetProperty(ctx, o, n, NULL);
  JSStringRelease(n);
  return JSValueIsString(ctx, v) ? js_string(v) : NULL;
}

static JSValueRef prop(JSObjectRef o, const char *name) {
  JSStringRef n = JSStringCreateWithUTF8CString(name);
  JSValueRef v = JSObjectGetProperty(ctx, o, n, NULL);
  JSStringRelease(n);
  return v;
}

static int length_of(JSObjectRef o) {
  return (int)JSValueToNumber(ctx, prop(o, "length"), NULL);
}

/** A JS array of strings as an `ip` argv (argv[0] "ip", NULL-terminated); NULL if it is not one. */
static char **ip_argv(JSValueRef v) {
  if (!JSValueIsArray(ctx, v)) return NULL;
  JSObjectRef list = JSValueToObject(ctx, v, NULL);
  int n = length_of(list);
  char **argv = calloc((size_t)n + 2, sizeof *argv);
  argv[0] = strdup("ip");
  for (int i = 0; i < n; i++) {
    JSValueRef item = JSObjectGetPropertyAtIndex(ctx, list, (unsigned)i, NULL);
    if (!JSValueIsString(ctx, item)) { for (int j = 0; j <= i; j++) free(argv[j]); free(argv); return NULL; }
    argv[i + 1] = js_string(item);
  }
  return argv;
}

static void push_undo(char **argv) {
  undos = realloc(undos, (size_t)(n_undos + 1) * sizeof *undos);
  undos[n_undos++] = argv;
}

/**
 * A state file left by a host that did not stop (SIGKILL, a crash): unless that host
 * still runs, its undos are replayed and resolv.conf is put back. Only what this host
 * writes is accepted: `ip -4|-6 route del …`, and the resolv.conf texts.
 * Returns 1 when something was recovered.
 */
static int recover(void) {
  char *text = slurp(state_path);
  if (!text) return 0;
  JSStringRef js = JSStringCreateWithUTF8CString(text);
  JSValueRef v = JSValueMakeFromJSONString(ctx, js);
  JSStringRelease(js);
  free(text);
  JSObjectRef o = v && JSValueIsObject(ctx, v) ? JSValueToObject(ctx, v, NULL) : NULL;
  char *format = o ? prop_string(o, "format") : NULL;
  char *start = o ? prop_string(o, "startTime") : NULL;
  JSValueRef list = o ? prop(o, "undo") : NULL;
  if (!format || strcmp(format, STATE_FORMAT) || !start || !list || !JSValueIsArray(ctx, list)) {
    fprintf(stderr, "burrow-jsc-host: %s is not a state file this host wrote; move it away (nothing was changed)\n", state_path);
    exit(1);
  }
  long pid = (long)JSValueToNumber(ctx, prop(o, "pid"), NULL);
  char *now = start_time_of(pid);
  if (now && !strcmp(now, start)) {
    fprintf(stderr, "burrow-jsc-host: a host for %s runs already (pid %ld)\n", ifname, pid);
    exit(1);
  }
  free(now);
  free(start);
  free(format);
  JSObjectRef items = JSValueToObject(ctx, list, NULL);
  int n = length_of(items);
  for (int i = 0; i < n; i++) {
    char **argv = ip_argv(JSObjectGetPropertyAtIndex(ctx, items, (unsigned)i, NULL));
    int ok = argv && argv[1] && argv[2] && argv[3] && (!strcmp(argv[1], "-4") || !strcmp(argv[1], "-6")) && !strcmp(argv[2], "route") && !strcmp(argv[3], "del");
    if (!ok) {
      fprintf(stderr, "burrow-jsc-host: %s: undo %d is not a route deletion; move it away (nothing was changed)\n", state_path, i + 1);
      exit(1);
    }
    push_undo(argv);
  }
  JSValueRef r = prop(o, "resolvConf");
  if (JSValueIsObject(ctx, r)) {
    JSObjectRef ro = JSValueToObject(ctx, r, NULL);
    resolv_original = prop_string(ro, "original");
    resolv_written = prop_string(ro, "written");
    if (!resolv_original || !resolv_written) {
      fprintf(stderr, "burrow-jsc-host: %s: a bad resolvConf record; move it away (nothing was changed)\n", state_path);
      exit(1);
    }
  }
  fprintf(stderr, "burrow-jsc-host: the host for %s (pid %ld) did not stop: undoing what it recorded\n", ifname, pid);
  undo_all();
  return 1;
}

/**
 * Applies the plan Burrow.linuxCommands computed: each `ip` command in order, its undo
 * recorded first when it has one, then resolv.conf with its original content recorded
 * first. A command that fails stops the host (and the atexit handler undoes the rest).
 */
static void apply_plan(JSObjectRef plan) {
  applied = 1;
  JSObjectRef steps = JSValueToObject(ctx, prop(plan, "steps"), NULL);
  int n = length_of(steps);
  for (int i = 0; i < n; i++) {
    JSObjectRef step = JSValueToObject(ctx, JSObjectGetPropertyAtIndex(ctx, steps, (unsigned)i, NULL), NULL);
    char **argv = ip_argv(prop(step, "argv"));
    char **undo = ip_argv(prop(step, "undo"));
    if (!argv) { fprintf(stderr, "burrow-jsc-host: step %d has no argv\n", i + 1); exit(1); }
    if (undo) { push_undo(undo); write_state(); }
    if (run_ip(argv, NULL) != 0) { print_argv("failed", argv); exit(1); }
    for (int j = 0; argv[j]; j++) free(argv[j]);
    free(argv);
  }
  char *resolv = prop_string(plan, "resolvConf");
  if (resolv) {
    resolv_original = slurp(RESOLV_CONF);
    if (!resolv_original) die(RESOLV_CONF);
    resolv_written = resolv;
    write_state();
    if (rewrite(RESOLV_CONF, resolv) < 0) die(RESOLV_CONF);
  }
}

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static JSValueRef call(JSObjectRef f, size_t argc, const JSValueRef argv[], const char *where) {
  JSValueRef exc = NULL;
  JSValueRef r = JSObjectCallAsFunction(ctx, f, burrow, argc, argv, &exc);
  check(exc, where);
  return r;
}

static void no_free(void *bytes, void *context) { (void)bytes; (void)context; }

static JSObjectRef wrap(JSTypedArrayType type, void *bytes, size_t length) {
  JSValueRef exc = NULL;
  JSObjectRef o = JSObjectMakeTypedArrayWithBytesNoCopy(ctx, type, bytes, length, no_free, NULL, &exc);
  check(exc, "typed array");
  JSValueProtect(ctx, o);
  return o;
}

#define USAGE \
  "usage: burrow-jsc-host --bundle FILE --config FILE --ifname NAME [--endpoints JSON]\n" \
  "                       [--aead noble|openssl] [--dh noble|openssl] [--no-apply]\n" \
  "       burrow-jsc-host --ifname NAME --recover\n"
#define HELP \
  "\nRuns the Burrow core (the JavaScriptCore bundle, dist/jsc/burrow.js) as a client on the\n" \
  "TUN interface NAME, as the Mac's packet tunnel extension does, and applies the network\n" \
  "settings it computes: addresses, MTU, routes (a full tunnel too, the endpoint kept\n" \
  "outside it), and DNS servers in the namespace's resolv.conf (only under `ip netns exec`).\n" \
  "  --bundle FILE     the bundle (npm run build:jsc)\n" \
  "  --config FILE     a wg-quick configuration file\n" \
  "  --ifname NAME     the TUN interface to create\n" \
  "  --endpoints JSON  the peers' endpoints resolved, [{\"host\":\"ADDR\",\"port\":N}, ...] in peer order\n" \
  "  --aead, --dh      noble (the core's own) or openssl (injected, as CryptoKit is on a Mac)\n" \
  "  --no-apply        open the TUN but change no address, route or DNS\n" \
  "  --recover         undo what a host for NAME killed by SIGKILL left (/run/burrow/NAME.jsc-host.state)\n" \
  "A line on stdin prints the status as one JSON line; SIGTERM or SIGINT stops it and undoes\n" \
  "its changes.\n"

int main(int argc, char **argv) {
  const char *bundle = NULL, *config = NULL, *endpoints = "", *aead = "noble", *dh = "noble";
  int apply = 1, recover_only = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--bundle") && i + 1 < argc) bundle = argv[++i];
    else if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    else if (!strcmp(argv[i], "--ifname") && i + 1 < argc) ifname = argv[++i];
    else if (!strcmp(argv[i], "--endpoints") && i + 1 < argc) endpoints = argv[++i];
    else if (!strcmp(argv[i], "--aead") && i + 1 < argc) aead = argv[++i];
    else if (!strcmp(argv[i], "--dh") && i + 1 < argc) dh = argv[++i];
    else if (!strcmp(argv[i], "--no-apply")) apply = 0;
    else if (!strcmp(argv[i], "--recover")) recover_only = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(USAGE HELP, stdout); return 0; }
    else { fprintf(stderr, "burrow-jsc-host: unknown argument %s\n" USAGE, argv[i]); return 2; }
  }
  if (!ifname || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/') || ifname[0] == '.') {
    fprintf(stderr, "burrow-jsc-host: --ifname NAME is required: 1 to %d characters, no '/', not starting with '.'\n", IFNAMSIZ - 1);
    return 2;
  }
  snprintf(state_path, sizeof state_path, "%s/%s.jsc-host.state", STATE_DIR, ifname);
  ctx = JSGlobalContextCreate(NULL);
  if (recover_only) {
    if (!recover()) fprintf(stderr, "burrow-jsc-host: nothing to recover for %s\n", ifname);
    return 0;
  }
  if (!bundle || !config || (strcmp(aead, "noble") && strcmp(aead, "openssl")) || (strcmp(dh, "noble") && strcmp(dh, "openssl"))) {
    fprintf(stderr, "burrow-jsc-host: --bundle and --config are required; --aead and --dh are noble or openssl\n");
    return 2;
  }
  if (apply) recover();

  char *source = read_file(bundle);
  JSStringRef script = JSStringCreateWithUTF8CString(source);
  JSValueRef exc = NULL;
  JSEvaluateScript(ctx, script, NULL, NULL, 1, &exc);
  check(exc, "evaluating the bundle");
  JSStringRelease(script);
  free(source);
  burrow = get_function(JSContextGetGlobalObject(ctx), "Burrow");
  JSObjectRef fn_start = get_function(burrow, "start");
  JSObjectRef fn_commands = get_function(burrow, "linuxCommands");
  fn_packets = get_function(burrow, "packets");
  fn_datagrams = get_function(burrow, "datagrams");
  fn_timer = get_function(burrow, "timer");
  fn_status = get_function(burrow, "status");

  JSObjectRef host = JSObjectMake(ctx, NULL, NULL);
  JSValueProtect(ctx, host);
  set_function(host, "random", cb_random);
  set_function(host, "send", cb_send);
  set_function(host, "write", cb_write);
  set_function(host, "arm", cb_arm);
  set_function(host, "log", cb_log);
  struct timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  set_value(host, "wallClockAtZero", JSValueMakeNumber(ctx, (double)real.tv_sec * 1000.0 + (double)real.tv_nsec / 1e6 - now_ms()));
  if (!strcmp(aead, "openssl")) {
    evp = EVP_CIPHER_CTX_new();
    JSObjectRef a = JSObjectMake(ctx, NULL, NULL);
    JSStringRef name = JSStringCreateWithUTF8CString("openssl");
    set_value(a, "name", JSValueMakeString(ctx, name));
    JSStringRelease(name);
    set_function(a, "seal", cb_seal);
    set_function(a, "open", cb_open);
    set_value(host, "aead", a);
  }

  if (!strcmp(dh, "openssl")) set_function(host, "x25519", cb_x25519);

  char *config_text = read_file(config);
  JSStringRef cfg = JSStringCreateWithUTF8CString(config_text);
  JSStringRef eps = JSStringCreateWithUTF8CString(endpoints);
  JSValueRef start_args[] = { JSValueMakeString(ctx, cfg), JSValueMakeString(ctx, eps), host };
  JSValueRef started = call(fn_start, 3, start_args, "Burrow.start");
  JSStringRelease(cfg);
  JSStringRelease(eps);
  memset(config_text, 0, strlen(config_text)); // the private key
  free(config_text);
  char *settings_json = js_string(started);
  JSValueRef parsed = JSValueMakeFromJSONString(ctx, JSStringCreateWithUTF8CString(settings_json));
  JSObjectRef parsed_obj = JSValueToObject(ctx, parsed, NULL);
  JSStringRef k = JSStringCreateWithUTF8CString("listenPort");
  int listen_port = (int)JSValueToNumber(ctx, JSObjectGetProperty(ctx, parsed_obj, k, NULL), NULL);
  JSStringRelease(k);
  k = JSStringCreateWithUTF8CString("fwmark");
  int fwmark = (int)JSValueToNumber(ctx, JSObjectGetProperty(ctx, parsed_obj, k, NULL), NULL);
  JSStringRelease(k);
  k = JSStringCreateWithUTF8CString("slotSize");
  size_t slot = (size_t)JSValueToNumber(ctx, JSObjectGetProperty(ctx, parsed_obj, k, NULL), NULL);
  JSStringRelease(k);

  // The plan first, while no route has changed: its queries see the paths outside the tunnel.
  JSObjectRef plan = NULL;
  if (apply) {
    JSStringRef qn = JSStringCreateWithUTF8CString("ipQuery");
    JSValueRef cargs[] = { started, js_str(ifname), JSObjectMakeFunctionWithCallback(ctx, qn, cb_ip_query) };
    JSStringRelease(qn);
    plan = JSValueToObject(ctx, call(fn_commands, 3, cargs, "Burrow.linuxCommands"), NULL);
    JSValueProtect(ctx, plan);
    if (JSValueIsString(ctx, prop(plan, "resolvConf")) && !resolv_conf_is_namespace_mount()) {
      fprintf(stderr, "burrow-jsc-host: the configuration has DNS servers, and %s is not a namespace's own (run the host with `ip netns exec NAME` and /etc/netns/NAME/resolv.conf in place); nothing was changed\n", RESOLV_CONF);
      return 2;
    }
  }

  // From here every exit takes back what was applied; a signal only asks the loop to stop.
  // SIGPIPE is ignored: a reader of our stdout or stderr that has gone (a parent that
  // died, or closed its pipes before SIGTERM) must not kill us halfway through the undo.
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  atexit(stop_platform);
  tun_fd = open_tun(ifname);
  udp_fd = open_udp(listen_port, fwmark);
  if (apply) apply_plan(plan);
  printf("%s\n", settings_json);
  fflush(stdout);
  free(settings_json);

  // The batch arenas, wrapped once: the core sees them as typed arrays, no copies.
  uint8_t *tun_arena = calloc(BATCH, slot);
  int32_t *tun_lengths = calloc(BATCH, sizeof(int32_t));
  uint8_t *udp_arena = calloc(BATCH, UDP_SLOT);
  int32_t *udp_lengths = calloc(BATCH, sizeof(int32_t));
  uint8_t *udp_addrs = calloc(BATCH, ADDR_STRIDE);
  JSObjectRef js_tun_arena = wrap(kJSTypedArrayTypeUint8Array, tun_arena, BATCH * slot);
  JSObjectRef js_tun_lengths = wrap(kJSTypedArrayTypeInt32Array, tun_lengths, BATCH * sizeof(int32_t));
  JSObjectRef js_udp_arena = wrap(kJSTypedArrayTypeUint8Array, udp_arena, BATCH * UDP_SLOT);
  JSObjectRef js_udp_lengths = wrap(kJSTypedArrayTypeInt32Array, udp_lengths, BATCH * sizeof(int32_t));
  JSObjectRef js_udp_addrs = wrap(kJSTypedArrayTypeUint8Array, udp_addrs, BATCH * ADDR_STRIDE);

  struct mmsghdr msgs[BATCH];
  struct iovec iovs[BATCH];
  struct sockaddr_in6 froms[BATCH];

  JSValueRef first[] = { JSValueMakeNumber(ctx, now_ms()) };
  call(fn_timer, 1, first, "Burrow.timer");

  struct pollfd fds[3] = { { .fd = tun_fd, .events = POLLIN }, { .fd = udp_fd, .events = POLLIN }, { .fd = STDIN_FILENO, .events = POLLIN } };
  while (!stop_requested) {
    int timeout = -1;
    if (armed_at >= 0) {
      double d = armed_at - now_ms();
      timeout = d <= 0 ? 0 : (int)d + 1;
    }
    int r = poll(fds, 3, timeout);
    if (r < 0 && errno != EINTR) die("poll");
    if (r > 0 && (fds[2].revents & (POLLIN | POLLHUP))) {
      char line[256];
      if (read(STDIN_FILENO, line, sizeof line) <= 0) {
        fds[2].fd = -1; // stdin closed: no more status requests
        continue;
      }
      JSValueRef sargs[] = { JSValueMakeNumber(ctx, now_ms()) };
      char *s = js_string(call(fn_status, 1, sargs, "Burrow.status"));
      printf("%s\n", s);
      fflush(stdout);
      free(s);
    }
    if (r > 0 && (fds[0].revents & POLLIN)) {
      int n = 0;
      while (n < BATCH) {
        ssize_t got = read(tun_fd, tun_arena + (size_t)n * slot + HEADROOM, slot - HEADROOM - 32);
        if (got <= 0) break;
        tun_lengths[n++] = (int32_t)got;
      }
      if (n > 0) {
        JSValueRef a[] = { js_tun_arena, js_tun_lengths, JSValueMakeNumber(ctx, n), JSValueMakeNumber(ctx, (double)slot), JSValueMakeNumber(ctx, now_ms()) };
        call(fn_packets, 5, a, "Burrow.packets");
      }
    }
    if (r > 0 && (fds[1].revents & POLLIN)) {
      for (int i = 0; i < BATCH; i++) {
        iovs[i] = (struct iovec){ udp_arena + (size_t)i * UDP_SLOT, UDP_SLOT };
        msgs[i].msg_hdr = (struct msghdr){ .msg_name = &froms[i], .msg_namelen = sizeof froms[i], .msg_iov = &iovs[i], .msg_iovlen = 1 };
      }
      int n = recvmmsg(udp_fd, msgs, BATCH, MSG_DONTWAIT, NULL);
      if (n > 0) {
        for (int i = 0; i < n; i++) {
          uint8_t *a = udp_addrs + i * ADDR_STRIDE;
          const uint8_t *ip = froms[i].sin6_addr.s6_addr;
          udp_lengths[i] = (int32_t)msgs[i].msg_len;
          uint16_t port = ntohs(froms[i].sin6_port);
          a[1] = (uint8_t)(port >> 8); a[2] = (uint8_t)port;
          if (IN6_IS_ADDR_V4MAPPED(&froms[i].sin6_addr)) { a[0] = 4; memcpy(a + 4, ip + 12, 4); }
          else { a[0] = 6; memcpy(a + 4, ip, 16); }
        }
        JSValueRef a[] = { js_udp_arena, js_udp_lengths, js_udp_addrs, JSValueMakeNumber(ctx, n), JSValueMakeNumber(ctx, UDP_SLOT), JSValueMakeNumber(ctx, now_ms()) };
        call(fn_datagrams, 6, a, "Burrow.datagrams");
      }
    }
    if (armed_at >= 0 && now_ms() >= armed_at) {
      armed_at = -1;
      JSValueRef a[] = { JSValueMakeNumber(ctx, now_ms()) };
      call(fn_timer, 1, a, "Burrow.timer");
    }
  }
  JSObjectCallAsFunction(ctx, get_function(burrow, "stop"), burrow, 0, NULL, NULL);
  close(udp_fd);
  stop_platform();
  JSGlobalContextRelease(ctx);
  if (evp) EVP_CIPHER_CTX_free(evp);
  return 0;
}
