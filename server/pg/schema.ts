// The PostgreSQL registry's schema, as numbered migrations. Each runs once, in order;
// burrow_schema_version has a row per migration applied. migrate() runs them all in one
// transaction under an advisory lock, so two gateways starting at once never both apply
// one, and a migration that fails leaves the database as it was.
//
//   burrow_server     one row: the [Interface] (private key, addresses, listen port, the
//                     rest of its wg-quick lines) and the "# burrow-server:" settings;
//                     `generation` counts committed changes. Writers lock this row
//                     (SELECT … FOR UPDATE): it is the registry's lock.
//   burrow_peer       one row per peer: name and public key unique, its keys, the
//                     "# burrow:" fields, its endpoint and keepalive.
//   burrow_address    the peers' AllowedIPs, one row each, UNIQUE: the last guard against
//                     two peers given the same tunnel address.
//   burrow_transfer   per peer and gateway, the bytes that gateway counted; a peer's
//                     totals are the sums over all gateways.

import type pg from 'pg';
import { RegistryError } from '../registry.js';

/** Serializes migrations across every process using the database ("burrow" in ASCII). */
export const MIGRATION_LOCK = 0x6275_7272_6f77;

export const MIGRATIONS: readonly string[] = [
  // 1: the registry
  `
  CREATE TABLE burrow_server (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    private_key text NOT NULL,
    addresses text[] NOT NULL,
    listen_port integer CHECK (listen_port BETWEEN 0 AND 65535),
    interface_extra text NOT NULL DEFAULT '',
    endpoint text,
    uplink text,
    client_to_client boolean NOT NULL DEFAULT false,
    dns text[] NOT NULL DEFAULT '{}',
    admin text,
    admin_tls_cert text,
    admin_tls_key text,
    admin_insecure boolean NOT NULL DEFAULT false,
    generation bigint NOT NULL DEFAULT 0
  );
  CREATE TABLE burrow_peer (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$'),
    public_key text NOT NULL UNIQUE,
    preshared_key text,
    client_key text,
    created timestamptz NOT NULL,
    enabled boolean NOT NULL,
    expires timestamptz,
    quota bigint CHECK (quota >= 0),
    over_quota text CHECK (over_quota ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    endpoint text,
    persistent_keepalive integer CHECK (persistent_keepalive BETWEEN 0 AND 65535),
    CHECK (over_quota IS NULL OR NOT enabled)
  );
  CREATE TABLE burrow_address (
    peer_id bigint NOT NULL REFERENCES burrow_peer (id) ON DELETE CASCADE,
    position integer NOT NULL,
    address text NOT NULL UNIQUE,
    PRIMARY KEY (peer_id, position)
  );
  CREATE TABLE burrow_transfer (
    peer_id bigint NOT NULL REFERENCES burrow_peer (id) ON DELETE CASCADE,
    gateway text NOT NULL,
    rx bigint NOT NULL DEFAULT 0,
    tx bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (peer_id, gateway)
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to SCHEMA_VERSION; returns the versions applied now (none when it
 * was there already). Refuses a database made by a newer Burrow.
 */
export async function migrate(client: pg.ClientBase, where: string): Promise<number[]> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS burrow_schema_version (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())');
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM burrow_schema_version');
    const current = rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new RegistryError('ERR_REGISTRY_DAMAGED', `${where}: the schema is at version ${current}, newer than this Burrow knows (${SCHEMA_VERSION}): upgrade Burrow`);
    }
    const applied: number[] = [];
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      await client.query(MIGRATIONS[v - 1]!);
      await client.query('INSERT INTO burrow_schema_version (version) VALUES ($1)', [v]);
      applied.push(v);
    }
    await client.query('COMMIT');
    return applied;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
