#!/usr/bin/env python3
"""Writes the results of scripts/reproduce_small.sh: OUT/results.md and OUT/results.json.

Usage: scripts/study_report.py OUT --scale tiny|small --steps N --commit SHA [--quick]

Reads OUT/runs/NAME-seedS/ (metrics.jsonl, done: the training's wall seconds),
OUT/eval/NAME-seedS/ (eval.json of `meap eval`, seconds), OUT/timings.tsv, OUT/stages.tsv,
OUT/leakage.json and the corpus manifests, and writes one row per
claim of the paper: the paper's figure, ours as mean ± std over seeds for NTP and MEAP,
the mean paired difference (MEAP - NTP, seed by seed) and a verdict judged against the
spread: "beats" when the mean difference is more than twice its standard error
(2 * sd / sqrt(n) over the n seeds) in the direction the paper reports as better,
"loses" when as far in the other direction, "ties" otherwise ("n/a" with one seed).
Standard library only.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys


def load_json(path):
    with open(path) as f:
        return json.load(f)


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def fmt(m, s, pct=False, digits=4):
    if m is None:
        return "–"
    if pct:
        return f"{100 * m:.1f} ± {100 * s:.1f}" if s is not None else f"{100 * m:.1f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if s is not None else f"{m:.{digits}f}"


def verdict(diffs, higher_is_better):
    diffs = [d for d in diffs if d is not None]
    n = len(diffs)
    if n < 2:
        return "n/a (one seed)"
    d, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    margin = 2 * sd / math.sqrt(n)
    better = d if higher_is_better else -d
    if better > margin and better > 0:
        return "beats"
    if -better > margin and better < 0:
        return "loses"
    return "ties"


# A metric: (label, function of eval.json -> number, higher is better, shown as a percentage)
def task(path):
    def get(doc):
        x = doc.get("tasks", {})
        for k in path:
            if isinstance(k, tuple):  # (list key, field, value): the element whose field is value
                lst, field, value = k
                x = next((e for e in x.get(lst, []) if e.get(field) == value), None)
            else:
                x = x.get(k) if isinstance(x, dict) else None
            if x is None:
                return None
        return x
    return get


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--scale", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--meap-version", default="", help="`meap --version`'s first lines: the binary that ran")
    args = ap.parse_args(argv)
    out = args.out

    # runs[name][seed] = {"eval": doc, "train_s", "eval_s", "val_loss", "tok_s"}
    runs = {}
    for d in sorted(os.listdir(os.path.join(out, "runs"))):
        m = re.fullmatch(r"(.+)-seed(\d+)", d)
        if not m:
            continue
        name, seed = m.group(1), int(m.group(2))
        r = {}
        run_dir = os.path.join(out, "runs", d)
        if os.path.exists(os.path.join(run_dir, "done")):
            text = open(os.path.join(run_dir, "done")).read().strip()
            r["train_s"] = float(text) if text else None
        metrics = os.path.join(run_dir, "metrics.jsonl")
        if os.path.exists(metrics):
            recs = [json.loads(line) for line in open(metrics) if line.strip()]
            vals = [x["val_loss"] for x in recs if "val_loss" in x]
            toks = [x["tokens_per_s"] for x in recs if "tokens_per_s" in x]
            r["val_loss"] = vals[-1] if vals else None
            r["tok_s"] = statistics.fmean(toks[1:] or toks) if toks else None
        e = os.path.join(out, "eval", d, "eval.json")
        if os.path.exists(e):
            r["eval"] = load_json(e)
            sec = os.path.join(out, "eval", d, "seconds")
            r["eval_s"] = float(open(sec).read()) if os.path.exists(sec) else None
        runs.setdefault(name, {})[seed] = r

    def values(name, get):
        return {s: get(r["eval"]) for s, r in runs.get(name, {}).items() if "eval" in r}

    def compare(a, b, get, higher):
        va, vb = values(a, get), values(b, get)
        seeds = sorted(set(va) & set(vb))
        diffs = [vb[s] - va[s] if va[s] is not None and vb[s] is not None else None for s in seeds]
        return mean_sd(list(va.values())), mean_sd(list(vb.values())), mean_sd(diffs), verdict(diffs, higher)

    ntp_doc = next((r["eval"] for r in runs.get("ntp", {}).values() if "eval" in r), None)
    k_docs = ntp_doc["tasks"]["mdqa"]["documents"] if ntp_doc and "mdqa" in ntp_doc["tasks"] else None
    middle = (k_docs + 1) // 2 if k_docs else None
    claims = [
        ("NIAH accuracy (log-likelihood, 1 needle)", "NTP 65.9 / MEAP 80.2 at 40B tokens; 52.8 / 85.8 at 60B; 87.1 / 98.2 at 200B",
         task(["niah", "overall", "accuracy"]), True, True),
        ("NIAH mean gold rank (lower is better)", "–", task(["niah", "overall", "mean_rank"]), False, False),
        ("MDQA accuracy, all gold positions", "MEAP up to +27.2 points (20 documents)",
         task(["mdqa", "overall", "accuracy"]), True, True),
        (f"MDQA accuracy, gold document last (position {k_docs})", "+27.2 points at position 20 of 20",
         task(["mdqa", ("by_position", "position", k_docs), "accuracy"]), True, True),
        (f"MDQA accuracy, gold document in the middle (position {middle})", "MEAP ahead (lost in the middle)",
         task(["mdqa", ("by_position", "position", middle), "accuracy"]), True, True),
        ("Held-out bits per byte (lower is better)", "on par (commonsense tasks on par)",
         task(["ppl", "bits_per_byte"]), False, False),
        ("Attention received by masked positions, masked vs clean run", "MEAP -53%",
         task(["attn", "overall", "received_change"]), False, True),
        ("Attention variance over unmasked keys, masked vs clean run", "MEAP +7.8%",
         task(["attn", "overall", "variance_change"]), True, True),
        ("Attention share of the needle's span (NIAH prompts)", "NTP 9.4% -> MEAP 34.5%",
         task(["attn", "overall", "span_share"]), True, True),
    ]
    rows, table = [], []

    def claim_row(label, paper, base, run, get, higher, pct):
        (nm, ns), (mm, ms), (dm, ds), v = compare(base, run, get, higher)
        rows.append({"claim": label, "paper": paper, "baseline": base, "run": run, "ntp": [nm, ns],
                     "meap": [mm, ms], "difference": [dm, ds], "verdict": v})
        table.append(f"| {label} | {paper} | {fmt(nm, ns, pct)} | {fmt(mm, ms, pct)} | "
                     f"{fmt(dm, ds, pct)} | {v} |")

    for label, paper, get, higher, pct in claims:
        claim_row(label, paper, "ntp", "meap", get, higher, pct)
    # The SFT half's claims: the baseline column is NTP-SFT.
    mdqa_acc = task(["mdqa", "overall", "accuracy"])
    if "ntp-sft-1ep" in runs and "meap-sft-1ep" in runs:
        claim_row("SFT: MDQA accuracy, MEAP-SFT vs NTP-SFT (1 epoch each)", "+11.77 points (25.56 -> 37.33)",
                  "ntp-sft-1ep", "meap-sft-1ep", mdqa_acc, True, True)
    if "ntp-sft-2ep" in runs and "meap-sft-1ep" in runs:
        claim_row("SFT: MDQA accuracy, MEAP-SFT 1 epoch vs NTP-SFT 2 epochs", "MEAP-SFT 1 epoch ahead",
                  "ntp-sft-2ep", "meap-sft-1ep", mdqa_acc, True, True)
    # The mask-ratio ablation's claim: 0.15 against the best other ratio (by mean retrieval
    # score), paired by seed; the baseline column is that ratio.
    ratio_runs = {"ntp": 0.0, "meap": 0.15}
    for name in runs:
        m = re.fullmatch(r"mask-([0-9.]+)", name)
        if m:
            ratio_runs[name] = float(m.group(1))

    def retrieval_score(doc):  # the mean of NIAH and MDQA accuracy
        n, q = task(["niah", "overall", "accuracy"])(doc), mdqa_acc(doc)
        return None if n is None or q is None else (n + q) / 2

    scores = {n: mean_sd(list(values(n, retrieval_score).values()))[0] for n in ratio_runs}
    scores = {n: v for n, v in scores.items() if v is not None}  # by mean over seeds
    others = [n for n in scores if n != "meap"]
    best_other = max(others, key=scores.get) if len(ratio_runs) > 2 and others else None
    if best_other:
        claim_row(f"Mask-ratio ablation: 0.15 vs the best other ratio ({ratio_runs[best_other]:g}), "
                  "mean of NIAH and MDQA accuracy", "15% is the best pre-training ratio (of 0-30%)",
                  best_other, "meap", retrieval_score, True, True)

    md = []
    title = "NTP vs MEAP at a small scale" + (" (--quick smoke test: no claims)" if args.quick else "")
    md += [f"# {title}", "",
           f"Generated by `scripts/reproduce_small.sh` (scale {args.scale}, {args.steps} steps per run, "
           f"{len(runs.get('ntp', {}))} seed(s)) at commit {args.commit}"
           + (f", with the binary `{args.meap_version}`" if args.meap_version else "") +
           ". Every number below was "
           "produced by that run; the commands are in OUT/commands.sh (OUT: the script's --out "
           "directory), the wall times in OUT/timings.tsv.", ""]
    commands = os.path.join(out, "commands.sh")
    if os.path.exists(commands):
        heads = [line[2:].strip() for line in open(commands) if line.startswith("# The exact commands of ")]
        if heads:
            md += ["The invocations that made it (a study stopped and started again resumes its runs):", ""]
            seen = {}
            for h in heads:
                seen[h] = seen.get(h, 0) + 1
            md += [f"- `{h[len('The exact commands of '):]}`" + (f" ({n} times)" if n > 1 else "")
                   for h, n in seen.items()] + [""]
    if args.quick:
        md += ["**--quick**: a handful of steps and tiny evaluation sizes, to check that every "
               "stage runs. The numbers are noise; do not read them as results.", ""]
    md += ["## The paper's claims", "",
           "Ours: mean ± std over seeds; difference: MEAP - NTP paired by seed (same seed, data, "
           "token budget, schedule and eval items); verdict: MEAP beats / ties / loses against NTP "
           "in the paper's direction, beats or loses only when the mean difference exceeds twice "
           "its standard error over seeds. Accuracies and changes in percent.", "",
           "For the SFT rows NTP and MEAP are NTP-SFT and MEAP-SFT; for the ablation row NTP is the "
           "best mask ratio other than 0.15 and MEAP is 0.15.", "",
           "| claim | paper (1.1B, 40-200B tokens) | NTP (ours) | MEAP (ours) | MEAP - NTP | verdict |",
           "|---|---|---|---|---|---|"] + table + [""]

    # Reading the results: the verdicts, and whether the accuracies are above chance at all.
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("beats", "ties", "loses")}
    md += ["## Reading the results", "",
           f"Of the {len(rows)} rows above MEAP beats NTP on {counts['beats']}, ties on "
           f"{counts['ties']} and loses on {counts['loses']} (judged against the spread over seeds)."]
    for key, label in (("niah", "NIAH"), ("mdqa", "MDQA")):
        if not ntp_doc or key not in ntp_doc["tasks"]:
            continue
        chance = ntp_doc["tasks"][key]["overall"].get("chance")
        accs = [r["eval"]["tasks"][key]["overall"]["accuracy"]
                for name in ("ntp", "meap") for r in runs.get(name, {}).values() if "eval" in r]
        if chance is None or not accs:
            continue
        mean = statistics.fmean(accs)
        md.append(f"{label}: chance is {100 * chance:.1f}% (one of the candidates at random); the "
                  f"twins score {100 * mean:.1f}% on average ({100 * min(accs):.1f}-{100 * max(accs):.1f}% "
                  "over runs)"
                  + (": near chance, so the models hardly retrieve from their context at this "
                     "scale and a tie says little about MEAP's claim either way." if mean < 1.5 * chance
                     else "."))
    md += ["", "What would change it: MEAP's retrieval gains appear in the paper at 1.1B "
           "parameters and 40B+ tokens, many orders of magnitude more compute (parameters x tokens) "
           "than these runs. "
           "More parameters and tokens ("
           + ("`--scale small`; " if args.scale == "tiny" else "")
           + "`--scale gpu`, docs/gpu.md), a larger "
           "share of retrieval documents (`make_retrieval_data.py --mix-ratio`) or longer "
           "training would first have to lift NTP's own retrieval above chance before MEAP's "
           "effect on it can show.", ""]

    # MDQA by position and NIAH by depth, NTP vs MEAP.
    if ntp_doc and "mdqa" in ntp_doc["tasks"]:
        md += ["## MDQA accuracy by gold position (%)", "", "| position | NTP | MEAP | MEAP - NTP | verdict |",
               "|---|---|---|---|---|"]
        for g in ntp_doc["tasks"]["mdqa"]["by_position"]:
            p = g["position"]
            (nm, ns), (mm, ms), (dm, ds), v = compare(
                "ntp", "meap", task(["mdqa", ("by_position", "position", p), "accuracy"]), True)
            md.append(f"| {p} | {fmt(nm, ns, True)} | {fmt(mm, ms, True)} | {fmt(dm, ds, True)} | {v} |")
        md.append("")
    if ntp_doc and "niah" in ntp_doc["tasks"]:
        md += ["## NIAH accuracy by needle depth (%)", "", "| depth | NTP | MEAP | MEAP - NTP | verdict |",
               "|---|---|---|---|---|"]
        for g in ntp_doc["tasks"]["niah"]["by_depth"]:
            dep = g["depth"]
            (nm, ns), (mm, ms), (dm, ds), v = compare(
                "ntp", "meap", task(["niah", ("by_depth", "depth", dep), "accuracy"]), True)
            md.append(f"| {dep:g} | {fmt(nm, ns, True)} | {fmt(mm, ms, True)} | {fmt(dm, ds, True)} | {v} |")
        md.append("")

    # The mask-ratio ablation: each ratio against 0.15, paired by seed.
    ablation = []
    if len(ratio_runs) > 2:
        md += ["## Mask-ratio ablation (the paper picks 15% for pre-training)", "",
               "Retrieval score: the mean of NIAH and MDQA accuracy; its difference and verdict "
               "compare each ratio with 0.15 (the same seeds), in the direction of the ratio beating 0.15.", "",
               "| mask ratio | NIAH acc. (%) | MDQA acc. (%) | retrieval score (%) | vs 0.15 | verdict | bits per byte | val loss |",
               "|---|---|---|---|---|---|---|---|"]
        for name, ratio in sorted(ratio_runs.items(), key=lambda kv: kv[1]):
            niah = mean_sd(list(values(name, task(["niah", "overall", "accuracy"])).values()))
            mdqa = mean_sd(list(values(name, mdqa_acc).values()))
            bpb = mean_sd(list(values(name, task(["ppl", "bits_per_byte"])).values()))
            vl = mean_sd([r.get("val_loss") for r in runs.get(name, {}).values()])
            (_, _), (sm, ss), (dm, ds), v = compare("meap", name, retrieval_score, True)
            if name == "meap":
                dm = ds = None
                v = "–"
            ablation.append({"ratio": ratio, "niah": list(niah), "mdqa": list(mdqa), "score": [sm, ss],
                             "vs_0.15": [dm, ds], "verdict": v, "bpb": list(bpb), "val_loss": list(vl)})
            md.append(f"| {ratio:g} | {fmt(*niah, True)} | {fmt(*mdqa, True)} | {fmt(sm, ss, True)} | "
                      f"{fmt(dm, ds, True)} | {v} | {fmt(*bpb)} | {fmt(*vl)} |")
        beaten = [f"{a['ratio']:g}" for a in ablation if a["verdict"] == "beats"]
        best = f"{ratio_runs[max(scores, key=scores.get)]:g}" if scores else "–"
        md += ["", f"Best ratio by mean retrieval score: {best} (the paper: 0.15). "
               + (f"Ratios that beat 0.15 beyond the spread: {', '.join(beaten)}."
                  if beaten else "No ratio beats 0.15 beyond the spread."), ""]

    # The mask-sampling comparison.
    sampling = []
    if "authors" in runs:
        md += ["## Mask sampling: per_sequence (meap) vs authors_code (the released code), both at 0.15", "",
               "| metric | per_sequence | authors_code | authors - per_sequence | verdict (authors_code vs per_sequence) |",
               "|---|---|---|---|---|"]
        for label, get, higher, pct in (
                ("NIAH accuracy (%)", task(["niah", "overall", "accuracy"]), True, True),
                ("MDQA accuracy (%)", task(["mdqa", "overall", "accuracy"]), True, True),
                ("bits per byte", task(["ppl", "bits_per_byte"]), False, False),
                ("masked-attention change (%)", task(["attn", "overall", "received_change"]), False, True)):
            (pm, ps), (am, as_), (dm, ds), v = compare("meap", "authors", get, higher)
            sampling.append({"metric": label, "per_sequence": [pm, ps], "authors_code": [am, as_],
                             "difference": [dm, ds], "verdict": v})
            md.append(f"| {label} | {fmt(pm, ps, pct)} | {fmt(am, as_, pct)} | {fmt(dm, ds, pct)} | {v} |")
        md.append("")

    # The SFT half.
    md += ["## SFT: NTP-SFT vs MEAP-SFT from one checkpoint", ""]
    sft = {}
    if "ntp-sft-1ep" in runs:
        sft = {"status": "done"}
        md += ["| run | MDQA acc. (%) |", "|---|---|"]
        for name in ("ntp-sft-1ep", "meap-sft-1ep", "ntp-sft-2ep"):
            m = mean_sd(list(values(name, task(["mdqa", "overall", "accuracy"])).values()))
            sft[name] = list(m)
            md.append(f"| {name} | {fmt(*m, True)} |")
        (nm, ns), (mm, ms), (dm, ds), v = compare("ntp-sft-1ep", "meap-sft-1ep", task(["mdqa", "overall", "accuracy"]), True)
        sft["meap_1ep_minus_ntp_1ep"] = {"difference": [dm, ds], "verdict": v}
        md += ["", f"MEAP-SFT - NTP-SFT (1 epoch each; the paper: +11.77 points, 25.56 -> 37.33): "
               f"{fmt(dm, ds, True)}, {v}."]
        (nm, ns), (mm, ms), (dm, ds), v = compare("ntp-sft-2ep", "meap-sft-1ep", task(["mdqa", "overall", "accuracy"]), True)
        sft["meap_1ep_minus_ntp_2ep"] = {"difference": [dm, ds], "verdict": v}
        md += [f"MEAP-SFT 1 epoch - NTP-SFT 2 epochs (the paper: MEAP-SFT ahead): {fmt(dm, ds, True)}, {v}.", ""]
        sft_doc = next((r["eval"] for r in runs["ntp-sft-1ep"].values() if "eval" in r), None)
        if sft_doc and "mdqa" in sft_doc["tasks"]:
            sft["by_position"] = []
            md += ["MDQA accuracy by gold position after SFT (%; lost in the middle: the paper's "
                   "MEAP-SFT gains most in the middle and at the end):", "",
                   "| position | NTP-SFT 1 ep | MEAP-SFT 1 ep | MEAP - NTP (1 ep) | verdict | NTP-SFT 2 ep |",
                   "|---|---|---|---|---|---|"]
            for g in sft_doc["tasks"]["mdqa"]["by_position"]:
                p = g["position"]
                get = task(["mdqa", ("by_position", "position", p), "accuracy"])
                (nm, ns), (mm, ms), (dm, ds), v = compare("ntp-sft-1ep", "meap-sft-1ep", get, True)
                two = mean_sd(list(values("ntp-sft-2ep", get).values()))
                sft["by_position"].append({"position": p, "ntp_1ep": [nm, ns], "meap_1ep": [mm, ms],
                                           "difference": [dm, ds], "verdict": v, "ntp_2ep": list(two)})
                md.append(f"| {p} | {fmt(nm, ns, True)} | {fmt(mm, ms, True)} | {fmt(dm, ds, True)} | {v} | {fmt(*two, True)} |")
            md.append("")
        sft_manifest = os.path.join(out, "data", "sft", "sft-prepare.json")
        if os.path.exists(sft_manifest):
            sm = load_json(sft_manifest)
            rec = sm.get("records", {})
            md += [f"SFT data: scripts/make_retrieval_data.py --sft-only (MDQA layout, 2-3 documents, "
                   f"pseudo-words), {rec.get('read')} items read, {rec.get('train')} train and "
                   f"{rec.get('val')} held out after dropping those longer than half a row "
                   f"(`--seq-len {sm.get('seq_len')}`); MEAP-SFT: sft.mask_ratio 0.1 of the copy's "
                   "tokens (sft.mask_scope=all: the answers are a few tokens, 10% of them rounds to "
                   "no mask), sft.min_answer_tokens=0. Evaluated with meap eval's MDQA "
                   f"({sft_doc['tasks']['mdqa']['documents'] if sft_doc else '?'} documents, "
                   "real first names and cities: a layout the SFT items share, words they do not).", ""]

    # Runs, corpus, leakage, stages, times.
    md += ["## Runs", "", "| run | seeds | final val loss | train wall s (mean) | tokens/s | eval wall s (mean) |",
           "|---|---|---|---|---|---|"]
    for name in sorted(runs):
        rs = runs[name].values()
        vl = mean_sd([r.get("val_loss") for r in rs])
        ts = mean_sd([r.get("train_s") for r in rs])[0]
        tk = mean_sd([r.get("tok_s") for r in rs])[0]
        es = mean_sd([r.get("eval_s") for r in rs])[0]
        md.append(f"| {name} | {len(runs[name])} | {fmt(*vl)} | {ts or 0:.1f} | {tk or 0:.0f} | {es or 0:.1f} |")
    md.append("")
    retrieval = os.path.join(out, "data", "text", "retrieval.json")
    if os.path.exists(retrieval):
        r = load_json(retrieval)
        md += ["## Corpus", "",
               f"Default text (King James Bible + fortunes; {r['base_documents']['train']} training documents, "
               f"{r['base_train_bytes']} bytes) mixed with {sum(r['retrieval_documents'].values())} synthetic "
               f"retrieval documents (scripts/make_retrieval_data.py, seed {r['seed']}: "
               f"{r['retrieval_documents']['key_value']} key-value lists, {r['retrieval_documents']['passage']} "
               f"fact passages; {r['retrieval_bytes']} bytes, {100 * r['mix_ratio_actual']:.1f}% of the training text). "
               f"Held out for ppl, NIAH haystacks and attention: {r['base_documents']['heldout']} documents of the default text.", ""]
    leak = os.path.join(out, "leakage.json")
    if os.path.exists(leak):
        lk = load_json(leak)
        md += ["## Leakage", "",
               f"scripts/check_leakage.py: {lk['items']} eval items ({lk['needles']} NIAH needles, "
               f"{lk['niah_keys']} keys, {lk['niah_values']} values, {lk['mdqa_facts']} MDQA facts) against the "
               f"training text: {'no leak' if not lk['problems'] else str(len(lk['problems'])) + ' LEAKS'}.", ""]
    # A study resumed over several invocations skips what is done: the stage times of the
    # last invocation can be near 0, so the runs' own times (kept beside them) are summed too.
    sft_names = ("ntp-sft-1ep", "meap-sft-1ep", "ntp-sft-2ep")
    def run_seconds(names, key):
        return sum(r.get(key) or 0 for n in names for r in runs.get(n, {}).values())
    pre = [n for n in runs if n not in sft_names]
    own = {"train": run_seconds(pre, "train_s"), "eval": run_seconds(pre, "eval_s"),
           "sft": run_seconds(sft_names, "train_s") + run_seconds(sft_names, "eval_s")}
    md += ["## Stages and wall times", "",
           "The last invocation's stage times (a stage whose runs were done before is quick), and "
           "the sum of the runs' own training and evaluation times (a run stopped and resumed "
           "counts its last part only).", "",
           "| stage | status | seconds (last invocation) | seconds (the runs' own, summed) |",
           "|---|---|---|---|"]
    times = {}
    with open(os.path.join(out, "timings.tsv")) as f:
        next(f)
        for line in f:
            k, v = line.rstrip("\n").split("\t")
            times[k] = float(v)
    with open(os.path.join(out, "stages.tsv")) as f:
        for line in f:
            k, status, _ = line.rstrip("\n").split("\t", 2)
            o = f"{own[k]:.0f}" if k in own else "–"
            md.append(f"| {k} | {status} | {times.get(k, 0):.1f} | {o} |")
    md += ["", f"Total of the last invocation before this report: {sum(times.values()):.0f} s; "
           f"the runs' own times: {sum(own.values()):.0f} s.", ""]

    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"scale": args.scale, "steps": args.steps, "commit": args.commit, "quick": args.quick,
                   "seeds": len(runs.get("ntp", {})), "claims": rows, "ablation": ablation,
                   "sampling": sampling, "sft": sft, "timings_s": times}, f, indent=1)
        f.write("\n")
    print(f"study_report: wrote {out}/results.md and results.json")


if __name__ == "__main__":
    sys.exit(main())
