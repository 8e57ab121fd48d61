"""The eval report in Markdown: headline metrics, per corpus, signals, the judge, gates, failed items."""

from __future__ import annotations


def markdown_report(report: dict) -> str:
    lines = [f"# Eval report\n\nModel: `{report['model']}` · embedder: `{report['embedder']}` · "
             f"commit `{report['commit']}` · {report['date']} · {report['items']} items "
             f"({', '.join(report['sets'])}); metrics below are on the {report['headline']} half\n",
             "| metric | value | 95% CI | numerator / denominator |", "|---|---|---|---|"]
    for name, m in report["metrics"].items():
        ci = m.get("ci95")
        lines.append(f"| {name} | {m['value']} | {f'{ci[0]}–{ci[1]}' if ci else ''} | "
                     f"{m.get('numerator', '')} / {m['denominator']} |")
    corpora = list(report["by_corpus"])
    lines += ["", f"## By corpus ({report['headline']} half)", "", "| metric | " + " | ".join(corpora) + " |",
              "|---|" + "---|" * len(corpora)]
    for name in report["metrics"]:
        cells = []
        for c in corpora:
            m = report["by_corpus"][c].get(name, {})
            ci = m.get("ci95")
            cells.append(f"{m.get('value')}" + (f" ({ci[0]}–{ci[1]})" if ci else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if report.get("signals"):
        lines += ["", f"## Signals ({report['headline']} half): AUROC", "",
                  "AUROC 0.5 is chance; below 0.5 the signal falls as the label rises (as P(NONE) should).", "",
                  "| signal | rows | answerable vs not | right answer vs not |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['rows']} | {v['answerable']} | {v['right']} |" for k, v in report["signals"].items()]
    if report.get("leave_one_out"):
        lines += ["", "## Leave one corpus out (report half, fitted on the other corpora's tune half)", "",
                  "| corpus | correctness | F1 | refusal recall | false refusals | confidence AUROC | threshold |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c} | {m['answer_correctness']} | {m['short_answer_f1']} | {m['refusal_recall']} | "
                  f"{m['false_refusal_rate']} | {m['confidence_auroc']} | {m['threshold']} |"
                  for c, m in report["leave_one_out"].items()]
    v = report["checker"]
    lines += ["", "## The judge against the hand labels", "",
              f"Judge: accuracy {v['judge']['accuracy']}, Cohen's kappa {v['judge']['kappa']} on "
              f"{v['judge']['n']} labels; on the {v['judge_held_out']['n']} held-out labels (odd lines, not "
              f"used to tune it): accuracy {v['judge_held_out']['accuracy']}, kappa "
              f"{v['judge_held_out']['kappa']}. The pipeline's own verifier: accuracy "
              f"{v['verifier']['accuracy']}, kappa {v['verifier']['kappa']}.", "",
              "| kind | judge accuracy |", "|---|---|"]
    lines += [f"| {k} | {a} |" for k, a in v["judge_accuracy_by_kind"].items()]
    if v.get("judge_short"):
        lines += ["", f"Short answers: the judge against {v['judge_short']['n']} hand labels "
                  f"(eval/short_support_labels.jsonl): accuracy {v['judge_short']['accuracy']}, kappa "
                  f"{v['judge_short']['kappa']}.", "", "| kind | judge accuracy |", "|---|---|"]
        lines += [f"| {k} | {a} |" for k, a in v["judge_short_accuracy_by_kind"].items()]
    lines += ["", "## Gates and targets", "", "| metric | value | gate (CI fails below it) | target | target met |",
              "|---|---|---|---|---|"]
    for name, rule in report["thresholds"].items():
        value = report["metrics"].get(name, {}).get("value")
        bound = "max" if "max" in rule else "min"
        target = rule.get("target", rule[bound])
        met = value is not None and (value <= target if bound == "max" else value >= target)
        lines.append(f"| {name} | {value} | {bound} {rule[bound]} | {target} | {'yes' if met else 'no'} |")
    lines += [""] + ([f"- FAILED: {f}" for f in report["threshold_failures"]] or ["All gates passed."])
    lines += ["", "## Failed items", ""]
    for r in report["rows"]:
        if r["split"] != report["headline"] and report["headline"] != "all":
            continue
        if (r["answerable"] and not r["correct"]) or (not r["answerable"] and not r["abstained"]):
            lines += [f"- **{r['id']}** ({r['corpus']}, {r['type']}) {r['question']}",
                      f"  - answer: {r['answer']}", f"  - gold: {r['gold']} (keywords: {r['keywords']})"]
    return "\n".join(lines) + "\n"
