#!/usr/bin/env python3
"""Cross-check `neonblue report` (SPEC 10) from outside Rust.

On a generated data set (3 experiments, 3 variants, run in file mode):

  1. stats: recomputes every number of `report --format json` from the Parquet
     with pyarrow/numpy and scipy/statsmodels -- Welch t tests (scipy
     ttest_ind / ttest_ind_from_stats, statsmodels ttest_ind), the delta-method
     relative interval, the sequential interval of SPEC 10.2, chance to beat
     control, Holm and Benjamini-Hochberg (statsmodels multipletests), the SRM
     chi-square (scipy chisquare) with default and custom weights -- for the
     whole range and for every cumulative date;
  2. chdb: runs schemas/analytics/clickhouse/experiment_arms.sql on chDB over
     the same Parquet and requires the report's n, mean and sd^2 per arm;
  3. notebook: executes examples/report.ipynb headless (nbclient); any failing
     cell fails the check;
  4. browser: renders `report --html` in Debian's headless Chromium (installed
     with apt if missing): the DOM must hold the charts, screenshots (desktop,
     phone, dark mode) must not be blank.

    python3 scripts/report_check.py --bin target/debug/neonblue [--work DIR]
           [--only stats,chdb,notebook,browser]

Needs PyPI numpy, pandas, pyarrow, scipy, statsmodels, chdb, duckdb, polars,
matplotlib, nbclient, nbformat, ipykernel, pillow (scripts/test.sh installs
them). Exits 1 with a message naming the first difference.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow.dataset as pads
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ["conversion_rate", "value_per_user", "events_per_user", "sessions_per_user"]
ALPHA, TUNING = 0.05, 5000.0


class CheckFailed(Exception):
    pass


def close(what, got, want, rel=1e-7, abs_=1e-10):
    if got is None or want is None:
        if got is not None or want is not None:
            raise CheckFailed(f"{what}: report {got!r}, expected {want!r}")
        return
    if not math.isclose(got, want, rel_tol=rel, abs_tol=abs_):
        raise CheckFailed(f"{what}: report {got!r}, expected {want!r}")


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise CheckFailed(f"{' '.join(map(str, cmd))} failed:\n{r.stderr[-2000:]}")
    return r.stdout


# ------------------------------------------------------------------ data set
def make_data(binary: str, work: str) -> str:
    out = os.path.join(work, "out")
    if os.path.isdir(os.path.join(out, "user_daily")):
        return out
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "in.jsonl")
    run([binary, "--log", "warn", "generate", "--records", "60000", "--seed", "11", "--set", "variants=3",
         "--set", "reassignments=0.02", "--set", "span_secs=432000", "--output", src])
    run([binary, "--log", "warn", "run", "--no-progress", "--partitions", "2", "--now", "2100-01-01T00:00:00Z",
         "--input", src, "--state", os.path.join(work, "state"), "--output", out])
    return out


def report(binary: str, out: str, *extra) -> dict:
    return json.loads(run([binary, "--log", "warn", "report", "--output", out, "--format", "json", *extra]))


# ----------------------------------------------------------- the population
def user_daily(out: str):
    ds = pads.dataset(os.path.join(out, "user_daily"), format="parquet", partitioning="hive")
    t = ds.to_table(columns=["date", "experiment_id", "variant_id", "user_id", "events", "value_sum",
                             "sessions", "exposed", "converted"]).to_pandas()
    t["date"] = t["date"].astype(str)
    return t


def arms_of(rows, experiment, up_to=None):
    """SPEC 10.1 from scratch: {variant_id: {metric: np.array per user}}, multi-variant users."""
    r = rows[rows.experiment_id == experiment]
    if up_to is not None:
        r = r[r.date <= up_to]
    g = r.groupby("user_id").agg(variants=("variant_id", "nunique"), variant=("variant_id", "first"),
                                 exposed=("exposed", "any"), converted=("converted", "any"),
                                 value=("value_sum", "sum"), events=("events", "sum"),
                                 sessions=("sessions", "sum"))
    multi = int((g.variants > 1).sum())
    g = g[(g.variants == 1) & g.exposed]
    arms = {}
    for v, u in g.groupby("variant"):
        arms[int(v)] = {
            "conversion_rate": u.converted.astype(float).to_numpy(),
            "value_per_user": u.value.astype(float).to_numpy(),
            "events_per_user": u.events.astype(float).to_numpy(),
            "sessions_per_user": u.sessions.astype(float).to_numpy(),
        }
    return arms, multi


def expected(metric, a, b):
    """Every statistic of SPEC 10.2 for variant b against control a, via scipy/statsmodels."""
    na, nb = len(a), len(b)
    ma, mb = a.mean(), b.mean()
    if metric == "conversion_rate":
        va, vb = ma * (1 - ma), mb * (1 - mb)
        # Welch with the proportion variances m(1-m), given as standard deviations
        t = stats.ttest_ind_from_stats(mb, math.sqrt(vb), nb, ma, math.sqrt(va), na, equal_var=False)
        qa, qb = va / na, vb / nb
        df = (qa + qb) ** 2 / (qa ** 2 / (na - 1) + qb ** 2 / (nb - 1))
        se = math.sqrt(qa + qb)
        q = stats.t.ppf(1 - ALPHA / 2, df)
        ci = (mb - ma - q * se, mb - ma + q * se)
        p_abs = t.pvalue
    else:
        va, vb = a.var(ddof=1), b.var(ddof=1)
        t = stats.ttest_ind(b, a, equal_var=False)
        df = t.df
        ci = tuple(t.confidence_interval(1 - ALPHA))
        p_abs = t.pvalue
        # a second opinion on the same test
        _, p_sm, df_sm = sm_ttest_ind(b, a, usevar="unequal")
        close(f"{metric} statsmodels vs scipy p", p_sm, p_abs, rel=1e-9)
        close(f"{metric} statsmodels vs scipy df", df_sm, df, rel=1e-9)
        se = math.sqrt(va / na + vb / nb)
    lift = (mb - ma) / abs(ma)
    se_l = math.sqrt(vb / (nb * ma ** 2) + va * mb ** 2 / (na * ma ** 4))
    q = stats.t.ppf(1 - ALPHA / 2, df)
    n = na + nb
    rho2 = (-2 * math.log(ALPHA) + math.log(1 - 2 * math.log(ALPHA))) / TUNING
    nr = n * rho2 + 1
    half = se_l * math.sqrt(n) * math.sqrt(2 * nr / (n * n * rho2) * math.log(math.sqrt(nr) / ALPHA))
    z = lift / se_l
    return {
        "control": (na, ma, math.sqrt(va)), "variant": (nb, mb, math.sqrt(vb)), "df": df,
        "absolute": (mb - ma, se, ci[0], ci[1], p_abs),
        "relative": (lift, se_l, lift - q * se_l, lift + q * se_l, 2 * stats.t.sf(abs(lift) / se_l, df)),
        "sequential": (lift - half, lift + half, min(1.0, math.sqrt(nr) * math.exp(-z * z * n * rho2 / (2 * nr)))),
        "chance": stats.norm.cdf(z),
    }


def check_results(label, results, arms, control):
    for r in results:
        a, b = arms[control][r["metric"]], arms[r["variant_id"]][r["metric"]]
        e = expected(r["metric"], a, b)
        w = f"{label} {r['metric']} {r['variant_id']}"
        for arm in ("control", "variant"):
            n, m, sd = e[arm]
            if r[arm]["n"] != n:
                raise CheckFailed(f"{w} {arm}.n: report {r[arm]['n']}, expected {n}")
            close(f"{w} {arm}.mean", r[arm]["mean"], m, rel=1e-9)
            close(f"{w} {arm}.sd", r[arm]["sd"], sd, rel=1e-8)
        close(f"{w} df", r["df"], e["df"], rel=1e-8)
        for k in ("absolute", "relative"):
            for name, want in zip(("estimate", "se", "ci_low", "ci_high", "p_value"), e[k]):
                close(f"{w} {k}.{name}", r[k][name], want)
        for name, want in zip(("ci_low", "ci_high", "p_value"), e["sequential"]):
            close(f"{w} sequential.{name}", r["sequential"][name], want)
        close(f"{w} chance_to_beat_control", r["chance_to_beat_control"], e["chance"])
        if r["warning"] is not None:
            raise CheckFailed(f"{w}: unexpected warning {r['warning']}")


def check_adjusted(label, results, method):
    p = [r["relative"]["p_value"] for r in results]
    want = multipletests(p, method=method)[1] if method else p
    for r, w in zip(results, want):
        close(f"{label} {r['metric']} {r['variant_id']} p_value_adjusted ({method})", r["p_value_adjusted"], w,
              rel=1e-12)


def check_srm(label, srm, arms, variants, weights):
    obs = [len(arms[v]["conversion_rate"]) if v in arms else 0 for v in variants]
    if [srm["users"][str(v)] for v in variants] != obs:
        raise CheckFailed(f"{label} srm.users: report {srm['users']}, expected {obs}")
    pos = [(o, w) for o, w in zip(obs, weights) if w > 0]
    total, wsum = sum(o for o, _ in pos), sum(w for _, w in pos)
    chi2, p = stats.chisquare([o for o, _ in pos], [w / wsum * total for _, w in pos])
    close(f"{label} srm.chi2", srm["chi2"], float(chi2), rel=1e-9)
    close(f"{label} srm.p_value", srm["p_value"], float(p), rel=1e-7, abs_=1e-15)
    if srm["flagged"] != (p < 0.001):
        raise CheckFailed(f"{label} srm.flagged: report {srm['flagged']}, p {p}")


def check_stats(binary: str, out: str) -> None:
    rows = user_daily(out)
    holm = report(binary, out)
    bh = report(binary, out, "--correction", "bh")
    none = report(binary, out, "--correction", "none")
    comparisons = 0
    for e, e_bh, e_none in zip(holm["experiments"], bh["experiments"], none["experiments"]):
        exp, control = e["experiment_id"], e["control_variant_id"]
        variants = sorted(int(v) for v in e["srm"]["users"])
        arms, multi = arms_of(rows, exp)
        if e["multi_variant_users"] != multi:
            raise CheckFailed(f"experiment {exp} multi_variant_users: report {e['multi_variant_users']}, expected {multi}")
        check_results(f"experiment {exp}", e["results"], arms, control)
        check_adjusted(f"experiment {exp}", e["results"], "holm")
        check_adjusted(f"experiment {exp}", e_bh["results"], "fdr_bh")
        check_adjusted(f"experiment {exp}", e_none["results"], None)
        check_srm(f"experiment {exp}", e["srm"], arms, variants, [1.0] * len(variants))
        comparisons += len(e["results"])
        for d in e["daily"]:
            arms_d, _ = arms_of(rows, exp, up_to=d["date"])
            check_results(f"experiment {exp} up to {d['date']}", d["results"], arms_d, control)
            check_adjusted(f"experiment {exp} up to {d['date']}", d["results"], "holm")
        weights = [3.0, 1.0, 0.0][: len(variants)]
        w = report(binary, out, "--experiment", str(exp), "--weights", ",".join(map(str, weights)))
        check_srm(f"experiment {exp} weights {weights}", w["experiments"][0]["srm"], arms, variants, weights)
    days = len(holm["experiments"][0]["daily"])
    print(f"stats: {comparisons} comparisons x {days} cumulative dates agree with scipy/statsmodels "
          f"(Welch, delta method, sequential, chance, Holm, BH, SRM with and without weights)")


# ---------------------------------------------------------------- ClickHouse
def check_chdb(binary: str, out: str) -> None:
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    sys.dont_write_bytecode = True  # leave scripts/__pycache__ as it is
    import analytics_check as ac  # noqa: E402  (the same loader as the analytics check)

    rep = report(binary, out)
    tmp = tempfile.mkdtemp(prefix="nb-report-chdb-")
    ch = ac.ClickHouse(tmp)
    try:
        ac.apply_ddl(ch, os.path.join(REPO, "schemas", "clickhouse"))
        ac.load(ch, out)
        with open(os.path.join(REPO, "schemas", "analytics", "clickhouse", "experiment_arms.sql")) as f:
            rows = ch.table(f.read()).to_pylist()
    finally:
        ch.close()
        shutil.rmtree(tmp, ignore_errors=True)
    got = {(r["experiment_id"], r["variant_id"], r["metric"]): r for r in rows}
    checked = 0
    for e in rep["experiments"]:
        for r in e["results"]:
            for side, v in (("control", e["control_variant_id"]), ("variant", r["variant_id"])):
                key = (e["experiment_id"], v, r["metric"])
                if key not in got:
                    raise CheckFailed(f"experiment_arms.sql has no row for {key}")
                c = got[key]
                if c["n"] != r[side]["n"]:
                    raise CheckFailed(f"{key} n: ClickHouse {c['n']}, report {r[side]['n']}")
                close(f"{key} mean (ClickHouse)", r[side]["mean"], c["mean"], rel=1e-9)
                close(f"{key} variance (ClickHouse)", r[side]["sd"] ** 2, c["variance"], rel=1e-8)
                checked += 1
    print(f"chdb: experiment_arms.sql on chDB gives the report's n, mean and variance ({checked} arm-metrics)")


# ------------------------------------------------------------------ notebook
def check_notebook(binary: str, out: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    path = os.path.join(REPO, "examples", "report.ipynb")
    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update({"NEONBLUE_OUTPUT": out, "NEONBLUE_BIN": os.path.abspath(binary)})
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": os.path.join(REPO, "examples")}}).execute()
    except Exception as e:  # nbclient raises CellExecutionError with the cell's traceback
        raise CheckFailed(f"examples/report.ipynb: a cell failed:\n{str(e)[-3000:]}")
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    if images < 1:
        raise CheckFailed("examples/report.ipynb: no plot in the outputs")
    print(f"notebook: examples/report.ipynb ran headless, {len(nb.cells)} cells, {images} plot(s), no failure")


# ------------------------------------------------------------------- browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    print("browser: installing Debian's chromium (apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True, env=env)
    return shutil.which("chromium") or "/usr/bin/chromium"


def browse(binary: str, html: str, profile: str, *args, timeout=120) -> str:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--hide-scrollbars", *args, "file://" + os.path.abspath(html)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise CheckFailed(f"chromium failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout


def not_blank(png: str, dark: bool) -> tuple[float, float]:
    from PIL import Image, ImageStat

    img = Image.open(png).convert("L")
    st = ImageStat.Stat(img)
    mean, sd = st.mean[0], st.stddev[0]
    colors = len(img.getcolors(1 << 20) or [])
    if sd < 10 or colors < 16:
        raise CheckFailed(f"{png} looks blank: luminance sd {sd:.1f}, {colors} grey levels")
    if dark and mean > 110:
        raise CheckFailed(f"{png}: dark mode screenshot is light (mean luminance {mean:.0f})")
    if not dark and mean < 150:
        raise CheckFailed(f"{png}: light mode screenshot is dark (mean luminance {mean:.0f})")
    return mean, sd


def check_browser(binary: str, out: str, work: str) -> None:
    html = os.path.join(work, "report.html")
    rep = json.loads(run([binary, "--log", "warn", "report", "--output", out, "--format", "json", "--html", html]))
    browser = chromium()
    profile = tempfile.mkdtemp(prefix="nb-chromium-")
    try:
        dom = browse(browser, html, profile, "--dump-dom")
        n_exp = len(rep["experiments"])
        n_lift = sum(len(e["results"]) for e in rep["experiments"])
        want = {"<svg": n_lift + n_exp, 'class="chart lift"': n_lift, 'class="chart users"': n_exp,
                "<polygon": 1, "<circle": 1, 'table class="results"': n_exp}
        for needle, n in want.items():
            if dom.count(needle) < n:
                raise CheckFailed(f"DOM after rendering has {dom.count(needle)} × {needle!r}, want ≥ {n}")
        shots = []
        for name, args, dark in (("desktop", ["--window-size=1280,2400"], False),
                                 ("phone", ["--window-size=390,2400", "--force-device-scale-factor=2"], False),
                                 ("dark", ["--window-size=1280,2400", "--force-dark-mode",
                                           "--blink-settings=preferredColorScheme=0"], True)):
            png = os.path.join(work, f"report-{name}.png")
            if os.path.exists(png):
                os.remove(png)
            browse(browser, html, profile, f"--screenshot={png}", *args)
            mean, sd = not_blank(png, dark)
            shots.append(f"{png} (mean {mean:.0f}, sd {sd:.0f})")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    print(f"browser: {os.path.basename(browser)} rendered {n_lift} lift charts and {n_exp} users charts; "
          f"screenshots not blank: " + ", ".join(shots))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "debug", "neonblue"))
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "neonblue-report-check"))
    ap.add_argument("--only", default="stats,chdb,notebook,browser")
    a = ap.parse_args()
    parts = [p.strip() for p in a.only.split(",") if p.strip()]
    try:
        out = make_data(a.bin, a.work)
        if "stats" in parts:
            check_stats(a.bin, out)
        if "chdb" in parts:
            check_chdb(a.bin, out)
        if "notebook" in parts:
            check_notebook(a.bin, out)
        if "browser" in parts:
            check_browser(a.bin, out, a.work)
    except CheckFailed as e:
        print(f"report check FAILED: {e}", file=sys.stderr)
        return 1
    print("report check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
