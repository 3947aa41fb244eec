/**
 * A directory archive and `gatehouse audit prune`: the gateway archives without pruning
 * (no keep_local), the command prunes only what a verified archive holds, and a damaged
 * archive prunes nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { auditFiles } from '../audit/test-files.js';
import { until } from '../testing/archive.js';
import { baseConfig, BIN, request, startGateway, startUpstream, writeConfig } from '../testing/harness.js';

const run = promisify(execFile);

describe('audit archive: directory target and audit prune', () => {
  it('directory archive + `gatehouse audit prune`: prunes only what a verified archive holds; a damaged archive prunes nothing', { timeout: 240_000 }, async () => {
    const up = await startUpstream();
    const files = auditFiles();
    const archiveDir = join(files.dir, 'archive');
    // Checkpoints fall at batch ends: a 1 ms flush keeps batches to a record or two, so
    // the 35 requests below cross three checkpoints (segment ends) whatever the machine's speed.
    const block = (extra: Record<string, unknown>) => files.block({ checkpoint_records: 10, flush_interval: '1ms', archive: { directory: archiveDir, interval: '1s', segment_records: 10, ...extra } });
    const gw = await startGateway(baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: block({}) }));
    try {
      // The writer checkpoints at batch ends only (chain format v2): a flush after every ten
      // records ends a batch there, so checkpoints (and segments) come every ~10 records
      // however the machine's speed batches the requests.
      for (let i = 0; i < 35; i++) {
        assert.equal((await request(`${gw.url}/d/${i}`)).status, 200);
        if (i % 10 === 9) await gw.gw.audit?.writer.flush();
      }
      await until('three segments archived', () => (gw.gw.audit?.archiver?.archived?.segment.index ?? -1) >= 2);
    } finally {
      await gw.close();
    }
    try {
      // Without keep_local the gateway never prunes, and neither does the command.
      // (In process: the command's message on stderr, exit code 1.)
      const { run: auditCli } = await import('../cli/audit.js');
      let stderr = '';
      const write = process.stderr.write.bind(process.stderr);
      process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
      let code: number;
      try {
        code = await auditCli(['prune', '--config', gw.file]);
      } finally {
        process.stderr.write = write;
      }
      assert.equal(code, 1);
      assert.match(stderr, /keep_local is not set/);
      const file = writeConfig(baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: block({ keep_local: '0s' }) }), mkdtempSync(join(files.dir, 'cfg-')));
      const dry = await run(process.execPath, [BIN, 'audit', 'prune', '--config', file, '--dry-run']);
      assert.match(dry.stdout, /would prune seqs 1\.\.\d+ \(archived in segments 0\.\.\d+, verified\)/);
      // A segment goes missing from the archive: nothing is pruned.
      const { readdirSync, readFileSync, renameSync } = await import('node:fs');
      const streamDir = join(archiveDir, readdirSync(archiveDir)[0] as string);
      const m1 = join(streamDir, '000000000001.manifest.json');
      renameSync(m1, `${m1}.away`);
      const refused = await run(process.execPath, [BIN, 'audit', 'prune', '--config', file]).catch((e: { code: number; stdout: string }) => e);
      assert.equal((refused as { code: number }).code, 1);
      assert.match((refused as { stdout: string }).stdout, /segment 1: segment_missing[\s\S]*NOT pruned: the archive does not verify/);
      renameSync(`${m1}.away`, m1);
      const done = await run(process.execPath, [BIN, 'audit', 'prune', '--config', file]);
      assert.match(done.stdout, /pruned \d+ record\(s\) through seq \d+/);
      const archive = await run(process.execPath, [BIN, 'audit', 'verify', '--archive', archiveDir, '--public-key', files.publicKey]);
      assert.match(archive.stdout, /OK: 1 archived stream\(s\) verified/);

      // Proofs of pruned records: the store alone refuses, the archive (+ the store) proves.
      const stream = readdirSync(archiveDir)[0] as string;
      const fromStore = await run(process.execPath, [BIN, 'audit', 'prove', '--config', file, '--record', `${stream}:3`]).catch((e: { code: number; stderr: string }) => e);
      assert.equal((fromStore as { code: number }).code, 1);
      assert.match((fromStore as { stderr: string }).stderr, /pruned locally; prove from the archive \(gatehouse audit prove --archive\)/);
      const proof = join(files.dir, 'p3.json');
      await run(process.execPath, [BIN, 'audit', 'prove', '--archive', archiveDir, '--config', file, '--record', `${stream}:3`, '--out', proof]);
      const ok = await run(process.execPath, [BIN, 'audit', 'verify', '--proof', proof, '--public-key', files.publicKey]);
      assert.match(ok.stdout, new RegExp(`OK: record ${stream}:3 is in the log under the signed checkpoint at seq \\d+`));
      // A third party with the archive alone (no config): against the archive's own checkpoints.
      const first = (JSON.parse(readFileSync(join(streamDir, '000000000000.manifest.json'), 'utf8')) as { checkpoints: Array<{ seq: number }> }).checkpoints[0]?.seq;
      const third = await run(process.execPath, [BIN, 'audit', 'prove', '--archive', archiveDir, '--consistency', '--stream', stream, '--from', String(first)]);
      assert.equal((JSON.parse(third.stdout) as { type: string }).type, 'consistency');
      // A segment missing from the archive: no proof, the segment named.
      renameSync(m1, `${m1}.away`);
      const gone = await run(process.execPath, [BIN, 'audit', 'prove', '--archive', archiveDir, '--record', `${stream}:3`]).catch((e: { code: number; stderr: string }) => e);
      assert.equal((gone as { code: number }).code, 1);
      assert.match((gone as { stderr: string }).stderr, /segment 1 has no manifest; verify it with gatehouse audit verify --archive/);
    } finally {
      await up.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });
});
