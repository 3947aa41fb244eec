/** `gatehouse keys generate --out DIR [--alg RS256|ES256|EdDSA] [--bits 4096] [--kid ID]`: a signing key pair and its JWKS. */
import { parseArgs } from 'node:util';
import { generateKeys, IssueInputError, type IssueAlg } from '../identity/issue.js';

const USAGE = 'usage: gatehouse keys generate --out DIR [--alg RS256|ES256|EdDSA] [--bits 4096] [--kid ID]';

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  let v: Record<string, string | undefined>;
  try {
    if (sub !== 'generate') throw new Error('unknown subcommand');
    v = parseArgs({ args: rest, options: { out: { type: 'string' }, alg: { type: 'string' }, bits: { type: 'string' }, kid: { type: 'string' } }, strict: true }).values;
    if (!v.out) throw new Error('--out DIR is required');
    if (v.alg !== undefined && !['RS256', 'ES256', 'EdDSA'].includes(v.alg)) throw new Error('--alg must be RS256, ES256 or EdDSA');
    if (v.bits !== undefined && !/^\d+$/.test(v.bits)) throw new Error('--bits must be a number');
  } catch (err) {
    process.stderr.write(`gatehouse keys: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
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
