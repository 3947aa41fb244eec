/**
 * Proofs from an archive (`gatehouse audit prove --archive`, docs/audit.md "Proofs"): the
 * leaves of a stream pruned locally live in its archive segments, the checkpoints in their
 * manifests. With the store as well, the store's records after the archive's last seq and
 * its checkpoints follow, so any checkpoint — archived or newer — can be proved against.
 *
 * Nothing here has to be trusted: a proof is checked by its verifier against a signed
 * checkpoint. A segment that is missing or whose data object is not the one its manifest
 * names is an error rather than a hole in the tree (a proof over a different tree would
 * only fail later, less clearly); `audit verify --archive` names what is wrong.
 */
import type { Checkpoint } from '../checkpoint.js';
import type { ProofSource } from '../proof.js';
import { storeRecords } from '../sources.js';
import type { AuditStore } from '../store/types.js';
import { decodeRecords, parseManifest, sha256Hex, type SegmentManifest } from './format.js';
import type { ArchiveTarget } from './target.js';
import { segmentSlots } from './verify-archive.js';

const SEQ = /[{,]"seq":([0-9]{1,16})[,}]/;

export function archiveProofSource(target: ArchiveTarget, store: AuditStore | null): ProofSource {
  const manifests = new Map<string, Promise<SegmentManifest[]>>();
  const fix = `verify it with gatehouse audit verify --archive ${target.location}`;

  async function load(stream: string): Promise<SegmentManifest[]> {
    const slots = await segmentSlots(target, stream);
    const out: SegmentManifest[] = [];
    const last = Math.max(-1, ...slots.keys());
    for (let i = 0; i <= last; i++) {
      const key = slots.get(i)?.manifestKey;
      const bytes = key === undefined ? null : await target.get(key);
      if (bytes === null) throw new Error(`archive ${target.location}, stream ${stream}: segment ${i} has no manifest; ${fix}`);
      const m = parseManifest(bytes);
      if (typeof m === 'string') throw new Error(`archive ${target.location}, stream ${stream}: the manifest of segment ${i} is not valid (${m}); ${fix}`);
      if (m.stream !== stream || m.index !== i || m.first_seq !== (out[i - 1]?.last_seq ?? 0) + 1) throw new Error(`archive ${target.location}, stream ${stream}: segment ${i} does not follow segment ${i - 1}; ${fix}`);
      out.push(m);
    }
    return out;
  }
  const segments = (stream: string): Promise<SegmentManifest[]> => {
    let p = manifests.get(stream);
    if (p === undefined) manifests.set(stream, (p = load(stream)));
    return p;
  };

  return {
    async checkpoints(stream) {
      const byKey = new Map<string, Checkpoint>();
      for (const m of await segments(stream)) for (const c of m.checkpoints) byKey.set(`${c.seq}:${c.merkle_root}`, c);
      // The store keeps the checkpoint at its prune's seq and every later one.
      if (store !== null) for (const c of await store.checkpoints(stream)) byKey.set(`${c.seq}:${c.merkle_root}`, c);
      return [...byKey.values()];
    },
    async *records(stream) {
      const ms = await segments(stream);
      if (ms.length === 0 && store === null) throw new Error(`archive ${target.location} holds no segment of stream ${stream}`);
      for (const m of ms) {
        const data = await target.get(m.data.key);
        if (data === null || sha256Hex(data) !== m.data.sha256) throw new Error(`archive ${target.location}, stream ${stream}: the data object of segment ${m.index} is ${data === null ? 'missing' : 'not the one its manifest names'}; ${fix}`);
        for (const line of await decodeRecords(data)) yield line;
      }
      if (store === null) return;
      const archived = ms[ms.length - 1]?.last_seq ?? 0;
      // The store's records after the archive (those the archive holds too, when they
      // were not pruned yet, are skipped).
      const pruned = await store.prunedTo(stream);
      if (pruned !== null && pruned.seq > archived) throw new Error(`stream ${stream} was pruned locally through seq ${pruned.seq}, but the archive ${target.location} ends at seq ${archived}`);
      for await (const data of storeRecords(store, stream)) {
        const m = SEQ.exec(data);
        if (m !== null && Number(m[1]) <= archived) continue;
        yield data;
      }
    },
  };
}

