#!/usr/bin/env python3
"""An independent verifier for gatehouse audit exports, written from docs/audit.md alone
(the canonical form, the chain, the Merkle tree, the checkpoints). Python standard library
only; checkpoint signatures are checked when the `cryptography` package is installed.

    python3 docs/audit-verify.py EXPORT.jsonl [--key KID=HEX ...] [--public-key PEM]

Prints one line per stream and exits 0 when every stream holds, 1 otherwise. It checks
what a third party can: chain v1 records (every record's hash over its canonical form,
the links, the MACs with --key) and chain v2 records (every record's leaf over its
canonical form, the batches' seal_first, their seals with --key, chained over the value
before each batch), streams that switch from v1 to v2, the seqs (a gap only when a
restart record declares it), and every checkpoint's head (the chain value at its seq),
Merkle root and signature. src/audit/independent.test.ts runs it against exports the
gateway's own code wrote and tampered.
"""
import hashlib
import hmac
import json
import re
import struct
import sys

SURROGATE = re.compile('[\ud800-\udfff]')
CHAIN = ('prev_hash', 'mac', 'hash', 'leaf', 'seal', 'seal_first')
SEAL_LABEL = b'gatehouse-audit-v2:seal'


def canonical(record):
    """UTF-8 of the record without its chain fields, members sorted, no whitespace, strings
    escaped as ECMAScript JSON.stringify does (lone surrogates as \\udxxx) - RFC 8785."""
    body = {k: v for k, v in record.items() if k not in CHAIN}
    text = json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return SURROGATE.sub(lambda m: '\\u%04x' % ord(m.group()), text).encode('utf-8')


def sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


class Merkle:
    """RFC 9162 Merkle Tree Hash over 32-byte entries, incrementally (right frontier)."""

    def __init__(self):
        self.stack = []  # (level, hash) of complete subtrees, left to right
        self.size = 0

    def push(self, entry):
        self.push_leaf(sha(b'\x00', entry))

    def push_leaf(self, leaf):
        node = (0, leaf)
        while self.stack and self.stack[-1][0] == node[0]:
            level, left = self.stack.pop()
            node = (level + 1, sha(b'\x01', left, node[1]))
        self.stack.append(node)
        self.size += 1

    def root(self):
        if not self.stack:
            return sha(b'')
        acc = self.stack[-1][1]
        for _, h in reversed(self.stack[:-1]):
            acc = sha(b'\x01', h, acc)
        return acc


def checkpoint_message(c):
    body = {k: c[k] for k in ('head_hash', 'key_id', 'merkle_root', 'seq', 'stream', 'time', 'v')}
    return b'gatehouse-audit-v1:checkpoint:' + json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def load_public_key(path):
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        return None
    with open(path, 'rb') as f:
        return load_pem_public_key(f.read())


def signature_ok(pub, c):
    sig = c['signature']
    raw = __import__('base64').urlsafe_b64decode(sig + '=' * (-len(sig) % 4))
    try:
        pub.verify(raw, checkpoint_message(c))
        return True
    except Exception:  # noqa: BLE001 - any failure is a bad signature
        return False


def batch_root(leaves):
    """RFC 9162 MTH over leaf hashes: the tree split at the largest power of two below n."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha(b'\x01', batch_root(leaves[:k]), batch_root(leaves[k:]))


def verify_stream(stream, records, checkpoints, keys, pub):
    problems = []
    cps = {}
    for c in checkpoints:
        if pub is not None and not signature_ok(pub, c):
            problems.append((c['seq'], 'checkpoint signature does not verify'))
            continue
        cps.setdefault(c['seq'], []).append(c)
    # The chain value: genesis, then a v1 record's hash or a v2 batch's seal.
    chain = sha(('gatehouse-audit-v1:genesis:' + stream).encode('utf-8'))
    expected = 1
    merkle = Merkle()
    # A v2 batch being read: [first seq, chain value before it, leaves, intact]. Not intact
    # when records are missing in or before it: its seal cannot be checked (the missing
    # records are the problem named).
    batch = None
    for r in records:
        seq = r['seq']
        canon = canonical(r)
        v2 = r.get('v') == 2
        skipped = False
        if seq > expected:
            declared = r['kind'] == 'restart' and r['lost_to'] == seq - 1 and r['count'] == seq - expected
            problems.append((expected, 'gap declared by a restart record' if declared else 'records missing'))
            if declared and any(expected <= s < seq for s in cps):
                problems.append((expected, 'a declared gap covers a signed checkpoint (truncated)'))
            if declared and batch is not None:
                if batch[3]:
                    problems.append((batch[0], 'records not covered by a seal'))
                batch = None
            skipped = not declared
        elif seq < expected:
            problems.append((seq, 'out of order or duplicated'))
            continue
        if batch is not None and not v2:
            if batch[3]:
                problems.append((batch[0], 'records not covered by a seal'))
            batch = None
        if v2:
            leaf = sha(b'\x00', canon)
            if leaf != bytes.fromhex(r['leaf']):
                problems.append((seq, 'content does not match its leaf'))
            if batch is None:
                batch = [seq, chain, [], not skipped]
            elif skipped:
                batch[3] = False
            batch[2].append(bytes.fromhex(r['leaf']))
            merkle.push_leaf(bytes.fromhex(r['leaf']))
            head = None
            if 'seal' in r:
                first, prev, leaves, intact = batch
                batch = None
                seal = bytes.fromhex(r['seal'])
                if intact and r['seal_first'] != first:
                    problems.append((first, 'seal_first is not where the batch begins'))
                elif intact and keys:
                    key = keys.get(r['kid'])
                    msg = SEAL_LABEL + prev + struct.pack('>QQ', first, seq) + batch_root(leaves)
                    if key is None or not hmac.compare_digest(hmac.new(key, msg, hashlib.sha256).digest(), seal):
                        problems.append((first, 'seal does not verify'))
                chain = head = seal
        else:
            prev_hash, mac, h = (bytes.fromhex(r[k]) for k in ('prev_hash', 'mac', 'hash'))
            if sha(prev_hash, canon, mac) != h:
                problems.append((seq, 'content does not match its hash'))
            if keys:
                key = keys.get(r['kid'])
                if key is None or not hmac.compare_digest(hmac.new(key, prev_hash + canon, hashlib.sha256).digest(), mac):
                    problems.append((seq, 'MAC does not verify'))
            if seq == expected and prev_hash != chain:
                problems.append((seq, 'does not link to the previous record'))
            merkle.push(h)
            chain = head = h
        expected = seq + 1
        for c in cps.get(seq, []):
            if head is None or bytes.fromhex(c['head_hash']) != head or bytes.fromhex(c['merkle_root']) != merkle.root():
                problems.append((seq, 'does not match the signed checkpoint'))
    if batch is not None:
        problems.append((batch[0], 'records not covered by a seal (the stream ends inside a batch)'))
    last = max(cps) if cps else 0
    if last >= expected:
        problems.append((expected, 'truncated before the checkpoint at seq %d' % last))
    return sorted(problems, key=lambda p: p[0])  # stable: in the order found


def main(argv):
    args = argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    path = args.pop(0)
    keys = {}
    pub = None
    signatures = 'not checked'
    while args:
        flag = args.pop(0)
        if flag == '--key':
            kid, _, hexkey = args.pop(0).partition('=')
            keys[kid] = bytes.fromhex(hexkey)
        elif flag == '--public-key':
            pub = load_public_key(args.pop(0))
            signatures = 'checked' if pub is not None else 'not checked (no cryptography package)'
        else:
            print('unknown option %s' % flag, file=sys.stderr)
            return 2
    streams = {}
    with open(path, encoding='utf-8') as f:
        header = json.loads(f.readline())
        if header.get('format') != 'gatehouse-audit-export':
            print('%s is not a gatehouse audit export' % path)
            return 1
        for s in header.get('streams') or []:
            streams.setdefault(s, ([], []))
        for n, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                print('line %d: not JSON' % n)
                return 1
            if 'record' in entry:
                streams.setdefault(entry['record']['stream'], ([], []))[0].append(entry['record'])
            elif 'checkpoint' in entry:
                streams.setdefault(entry['checkpoint']['stream'], ([], []))[1].append(entry['checkpoint'])
    bad = 0
    for stream, (records, checkpoints) in streams.items():
        problems = verify_stream(stream, records, checkpoints, keys, pub)
        if not records and not problems:
            problems = [(1, 'no records')]
        if problems:
            bad += 1
            print('stream %s: %d records, %d checkpoints: first problem at seq %d: %s' % (stream, len(records), len(checkpoints), problems[0][0], problems[0][1]))
        else:
            print('stream %s: %d records, %d checkpoints, MACs %s, signatures %s: OK' % (stream, len(records), len(checkpoints), 'checked' if keys else 'not checked', signatures))
    print('OK' if bad == 0 and streams else 'FAILED')
    return 0 if bad == 0 and streams else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
