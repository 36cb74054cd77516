import json, statistics, glob, sys
BT = sys.argv[1] if len(sys.argv) > 1 else 'b'
ROUNDS = sys.argv[2].split(',') if len(sys.argv) > 2 else None
def load(kind, t):
    t = BT if t == 'b' else t
    fs = sorted(glob.glob(f'/work/ab13/{t}-{kind}-*.json'))
    if ROUNDS: fs = [f for f in fs if f.rsplit('-',1)[1].split('.')[0] in ROUNDS]
    return [json.load(open(f)) for f in fs]
def med(v): return statistics.median(v)
print("## Runner start (agent p50 ms (ratio to the floor))\n")
print("| transport | secrets | A runs | B runs | median change (+ is slower) |\n|---|---|---|---|---|")
A, B = load('start','a'), load('start','b')
for row in A[0]['rows']:
    k=(row['transport'],row['secrets'])
    def vals(S):
        out=[]
        for s in S:
            r=next(r for r in s['rows'] if (r['transport'],r['secrets'])==k)
            out.append((r['agent']['p50_ms'], r['ratio']))
        return out
    a,b=vals(A),vals(B)
    fmt=lambda v:' / '.join('%.2f (%.2f×)'%x for x in v)
    ch=(med([x[0] for x in b])/med([x[0] for x in a])-1)*100
    print(f"| {k[0]} | {k[1]} | {fmt(a)} | {fmt(b)} | {ch:+.1f}% |")
print("\n## Throughput (fetches/s, 64 in flight)\n")
print("| transport | secrets | mode | A runs | B runs | median change (- is fewer/s) |\n|---|---|---|---|---|---|")
A, B = load('throughput','a'), load('throughput','b')
for row in A[0]['table']:
    k=(row['transport'],row['secrets'],row['result']['mode'])
    def vals(S):
        return [next(r for r in s['table'] if (r['transport'],r['secrets'],r['result']['mode'])==k)['result']['rate'] for s in S]
    a,b=vals(A),vals(B)
    ch=(med(b)/med(a)-1)*100
    print(f"| {k[0]} | {k[1]} | {k[2]} | {' / '.join('%.0f'%x for x in a)} | {' / '.join('%.0f'%x for x in b)} | {ch:+.1f}% |")
print("\n## Server CPU per fetch (µs, server_cpu_s / ops)\n")
print("| transport | secrets | mode | A runs | B runs | median change (+ is more CPU) |\n|---|---|---|---|---|---|")
for row in A[0]['table']:
    k=(row['transport'],row['secrets'],row['result']['mode'])
    def vals(S):
        out=[]
        for s in S:
            r=next(r for r in s['table'] if (r['transport'],r['secrets'],r['result']['mode'])==k)['result']
            out.append(r['server_cpu_s']/r['ops']*1e6)
        return out
    a,b=vals(A),vals(B)
    ch=(med(b)/med(a)-1)*100
    print(f"| {k[0]} | {k[1]} | {k[2]} | {' / '.join('%.0f'%x for x in a)} | {' / '.join('%.0f'%x for x in b)} | {ch:+.1f}% |")
