// The Temporal connection settings from Temporal's client config (a TOML profile), with the
// environment taking precedence, as the worker and the CLI load them.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { temporalConnectionOptions } from '../../temporal/connection.js';
import { ConfigError, loadConfig } from '../../workers/config.js';

const dir = mkdtempSync(join(tmpdir(), 'temporal-profile-'));
const ca = join(dir, 'ca.pem');
writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n');

function configFile(name: string, toml: string): string {
  const path = join(dir, name);
  writeFileSync(path, toml);
  return path;
}

const FILE = configFile(
  'temporal.toml',
  `
[profile.default]
address = "temporal.internal:7233"
namespace = "archiver"

[profile.cloud]
address = "archiver.a1b2c.tmprl.cloud:7233"
namespace = "archiver.a1b2c"
api_key = "key-from-file"
[profile.cloud.grpc_meta]
x-team = "archiving"

[profile.mtls]
address = "temporal.corp:7233"
[profile.mtls.tls]
server_ca_cert_path = "${ca}"
server_name = "temporal.corp"
`,
);

describe('the Temporal connection from a TOML profile', () => {
  it('uses the default profile of TEMPORAL_CONFIG_FILE, or the one TEMPORAL_PROFILE names', () => {
    expect(loadConfig({ TEMPORAL_CONFIG_FILE: FILE }).temporal).toMatchObject({
      address: 'temporal.internal:7233',
      namespace: 'archiver',
      apiKey: undefined,
      tls: false,
    });
    const cloud = loadConfig({ TEMPORAL_CONFIG_FILE: FILE, TEMPORAL_PROFILE: 'cloud' }).temporal;
    expect(cloud).toMatchObject({
      address: 'archiver.a1b2c.tmprl.cloud:7233',
      namespace: 'archiver.a1b2c',
      apiKey: 'key-from-file',
      tls: true,
    });
    // What the connections get: TLS because of the API key, and the profile's gRPC headers.
    expect(temporalConnectionOptions(cloud)).toEqual({
      address: 'archiver.a1b2c.tmprl.cloud:7233',
      tls: true,
      apiKey: 'key-from-file',
      metadata: { 'x-team': 'archiving' },
    });
    const mtls = loadConfig({ TEMPORAL_CONFIG_FILE: FILE, TEMPORAL_PROFILE: 'mtls' }).temporal;
    expect(mtls.tls).toMatchObject({ serverNameOverride: 'temporal.corp' });
    const caBytes = (mtls.tls as { serverRootCACertificate?: Uint8Array }).serverRootCACertificate;
    expect(Buffer.from(caBytes ?? []).toString()).toContain('not checked here');
  });

  it('lets the environment override the profile, setting by setting', () => {
    const config = loadConfig({
      TEMPORAL_CONFIG_FILE: FILE,
      TEMPORAL_PROFILE: 'cloud',
      TEMPORAL_ADDRESS: '127.0.0.1:7999',
      TEMPORAL_API_KEY: 'key-from-env',
    }).temporal;
    expect(config).toMatchObject({
      address: '127.0.0.1:7999',
      namespace: 'archiver.a1b2c',
      apiKey: 'key-from-env',
      tls: true,
    });
    expect(
      loadConfig({ TEMPORAL_CONFIG_FILE: FILE, TEMPORAL_NAMESPACE: 'other', TEMPORAL_TLS: 'true' }).temporal,
    ).toMatchObject({ address: 'temporal.internal:7233', namespace: 'other', tls: true });
    // Nothing configured at all: the local default.
    expect(loadConfig({}).temporal).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', tls: false });
  });

  it('names what is wrong: a missing profile or file, a bad value or key in the file', () => {
    const fails = (env: Record<string, string>, message: string | RegExp) => {
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(message);
    };
    fails(
      { TEMPORAL_CONFIG_FILE: FILE, TEMPORAL_PROFILE: 'prod' },
      `TEMPORAL_PROFILE: no profile "prod" in ${FILE} (it has "default", "cloud", "mtls")`,
    );
    fails(
      { TEMPORAL_CONFIG_FILE: join(dir, 'missing.toml') },
      /TEMPORAL_CONFIG_FILE: no readable file at .*missing\.toml/,
    );
    fails(
      { TEMPORAL_CONFIG_FILE: configFile('bad-address.toml', '[profile.default]\naddress = "no-port"\n') },
      /address of profile "default" of .*bad-address\.toml: must be host:port/,
    );
    fails(
      { TEMPORAL_CONFIG_FILE: configFile('typo.toml', '[profile.default]\nadress = "temporal:7233"\n') },
      /TEMPORAL_CONFIG_FILE: .*typo\.toml: .*unrecognized in profile\.default: adress/,
    );
    fails(
      { TEMPORAL_CONFIG_FILE: configFile('broken.toml', '[profile.default\naddress = 1\n') },
      /TEMPORAL_CONFIG_FILE: .*broken\.toml: /,
    );
    fails(
      {
        TEMPORAL_CONFIG_FILE: configFile(
          'no-cert.toml',
          `[profile.default]\naddress = "t:7233"\n[profile.default.tls]\nserver_ca_cert_path = "${join(dir, 'gone.pem')}"\n`,
        ),
      },
      /TLS certificate of .*no-cert\.toml: .*gone\.pem/,
    );
  });
});
