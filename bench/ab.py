#!/usr/bin/env python
"""A/B: fastbp training throughput of two versions, timed interleaved.

Each version runs in its own worker process (compiled once, data and weights
those of ``bench/compare.py``); the parent asks them in turn, A B B A A B ...,
to train the same number of epochs, so that load from other processes hits
both alike. For each case it prints both throughputs, the speed-up new/base of
the best timings and the median of the per-round ratios (robust to drift), and
whether one epoch from the same weights gives the same loss in both.

    python bench/ab.py HEAD~1 HEAD                 # two commits
    python bench/ab.py HEAD .                      # HEAD against the working tree
    python bench/ab.py main . --cases online,wide --rounds 9 --threads 1

A version is a git revision (its ``fastbp/`` is exported to a temporary
directory) or a directory that holds a ``fastbp/`` package.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "AB "


# --- worker ---------------------------------------------------------------------------

def worker():
    """Serve commands from the parent, one JSON object per line."""
    sys.path.insert(1, HERE)
    import compare
    import fastbp

    state = {}

    def reply(**fields):
        sys.stdout.write(PREFIX + json.dumps(fields) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "hello":
            reply(path=os.path.dirname(os.path.abspath(fastbp.__file__)),
                  version=fastbp.__version__)
        elif op == "setup":
            case = compare.CASES[cmd["case"]]
            X, y = compare.make_data(case.layers, case.n_samples)
            coefs, intercepts = compare.make_weights(case.layers)
            peer = compare.FastbpPeer()
            peer.setup(case, X, y, coefs, intercepts, compare.LR, cmd["threads"])
            Xc, yc = X[:case.n_check], y[:case.n_check]
            loss, c, b = peer.check(Xc, yc, coefs, intercepts)
            peer.reset(coefs, intercepts)
            one = compare._timed(peer.train, 1)[0]
            state.clear()
            state.update(peer=peer, n=case.n_samples, weights=(coefs, intercepts))
            reply(one=one, via=peer.via,
                  loss=[float(loss), compare.reference_loss(c, b, Xc, yc)])
        elif op == "time":
            state["peer"].reset(*state["weights"])
            seconds, load, _ = compare._timed(state["peer"].train, cmd["epochs"])
            reply(seconds=seconds, load=load)
        elif op == "quit":
            reply(bye=True)
            return


# --- parent ---------------------------------------------------------------------------

class Worker:
    """A worker process running the fastbp found in ``root``."""

    def __init__(self, label, root, threads):
        self.label = label
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]]
                                                      if env.get("PYTHONPATH") else []))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.threads = threads

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])
        raise RuntimeError(f"worker {self.label} stopped (exit status {self.proc.wait()})")

    def close(self):
        try:
            self.ask(op="quit")
        except (RuntimeError, OSError, ValueError):
            pass
        self.proc.wait()


def export(rev, tmp):
    """A directory holding ``fastbp/`` of ``rev`` (a directory or a git revision)."""
    if os.path.isfile(os.path.join(rev, "fastbp", "__init__.py")):
        return os.path.abspath(rev)
    root = os.path.dirname(HERE)
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=root,
                            check=True, capture_output=True, text=True).stdout.strip()
    dest = os.path.join(tmp, commit)
    os.makedirs(dest, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit, "fastbp"], cwd=root, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def ab_case(key, workers, rounds, min_time, settle):
    """Interleaved timings of one case; returns a dict of results."""
    import compare
    case = compare.CASES[key]
    setups = [w.ask(op="setup", case=key, threads=w.threads) for w in workers]
    epochs = max(1, min(10000, math.ceil(min_time / max(min(s["one"] for s in setups),
                                                        1e-6))))
    times = [[], []]
    loads = []
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            time.sleep(settle)
            got = workers[i].ask(op="time", epochs=epochs)
            times[i].append(got["seconds"])
            if got["load"] is not None:
                loads.append(got["load"])
    best = [min(t) for t in times]
    rates = [epochs * case.n_samples / b for b in best]
    losses = [s["loss"] for s in setups]
    diff = max(abs(a - b) / abs(a) for a, b in zip(*losses))
    return dict(case=case, rates=rates, speedup=best[0] / best[1],
                paired=statistics.median(a / b for a, b in zip(*times)),
                loss_diff=diff, load=statistics.median(loads) if loads else None,
                via=[s["via"] for s in setups], epochs=epochs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision, or a directory holding fastbp/")
    parser.add_argument("new", help="git revision, or a directory holding fastbp/")
    parser.add_argument("--cases", default=None, help="comma-separated case keys "
                        "(default: every case of bench/compare.py)")
    parser.add_argument("--rounds", type=int, default=7, help="timings per version")
    parser.add_argument("--min-time", type=float, default=0.3,
                        help="minimum seconds per timing")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both versions (default: every CPU)")
    args = parser.parse_args(argv)

    sys.path.insert(0, HERE)
    import compare
    keys = args.cases.split(",") if args.cases else list(compare.CASES)
    unknown = [k for k in keys if k not in compare.CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; choose from {list(compare.CASES)}")
    threads = args.threads or compare.cpu_count()
    tmp = tempfile.mkdtemp(prefix="fastbp-ab-")
    workers = []
    try:
        for label, rev in (("base", args.base), ("new", args.new)):
            workers.append(Worker(label, export(rev, tmp), threads))
        for w, rev in zip(workers, (args.base, args.new)):
            hello = w.ask(op="hello")
            print(f"{w.label}: {rev} -> fastbp {hello['version']} from {hello['path']}")
        header = ["case", "layers", "batch", "base", "new", "new/base (best)",
                  "new/base (median of rounds)", "loss diff", "other load"]
        rows = []
        for key in keys:
            r = ab_case(key, workers, args.rounds, args.min_time, compare.SETTLE)
            c = r["case"]
            rows.append([c.title, c.label, str(c.batch), compare._rate(r["rates"][0]),
                         compare._rate(r["rates"][1]), f"{r['speedup']:.3f}x",
                         f"{r['paired']:.3f}x", f"{r['loss_diff']:.1e}",
                         "-" if r["load"] is None else f"{r['load']:.2f}"])
            print(" ".join(rows[-1]), flush=True)
            if r["via"][0] != r["via"][1]:
                print(f"  note: timed through {r['via'][0]} (base) and {r['via'][1]} (new)")
        print()
        print(compare.format_text(header, rows))
        print(f"\nsamples/s, best of {args.rounds} interleaved timings of >= "
              f"{args.min_time:g} s; > 1x: new is faster; loss diff: relative difference "
              f"of the losses after one epoch from the same weights; other load: median "
              f"CPU cores used by other processes during the timings.")
    finally:
        for w in workers:
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        main()
