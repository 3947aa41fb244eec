/** `gatehouse keys generate --out DIR [--alg RS256|ES256|EdDSA] [--bits 4096] [--kid ID]`: a signing key pair and its JWKS. */
import { parseCommand, type CommandSpec } from './args.js';
import { generateKeys, IssueInputError, type IssueAlg } from '../identity/issue.js';

export const SPEC: CommandSpec = {
  name: 'keys',
  summary: 'Signing keys for tokens gatehouse verifies.',
  subcommands: {
    generate: {
      usage: 'gatehouse keys generate --out DIR [--alg RS256|ES256|EdDSA] [--bits 4096] [--kid ID]',
      summary: 'generate a signing key pair and its JWKS in DIR',
      options: {
        out: { type: 'string', value: 'DIR', required: true, description: 'where the key files go' },
        alg: { type: 'string', value: 'ALG', description: 'RS256, ES256 or EdDSA (default ES256)' },
        bits: { type: 'string', value: 'N', description: 'RSA modulus size' },
        kid: { type: 'string', value: 'ID', description: 'key id (default: derived from the key)' },
      },
    },
  },
};

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const v = p.values as Record<string, string | undefined>;
  if (v.alg !== undefined && !['RS256', 'ES256', 'EdDSA'].includes(v.alg)) return p.usageError('--alg must be RS256, ES256 or EdDSA');
  if (v.bits !== undefined && !/^\d+$/.test(v.bits)) return p.usageError('--bits must be a number');
  try {
    const out = await generateKeys(v.out as string, { alg: v.alg as IssueAlg | undefined, bits: v.bits !== undefined ? Number(v.bits) : undefined, kid: v.kid });
    process.stdout.write(
      `${JSON.stringify({ kid: out.kid, alg: out.alg, private_key: out.privateKeyFile, public_key: out.publicKeyFile, jwks: out.jwksFile })}\n` +
        `# the private key (mode 0600) stays with the issuer; give the gateway the public key or the JWKS\n`,
    );
    return 0;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`gatehouse keys: ${err instanceof IssueInputError ? e.message : e.code === 'EEXIST' ? 'a key with this kid already exists in that directory' : e.message}\n`);
    return err instanceof IssueInputError ? 2 : 1;
  }
}
