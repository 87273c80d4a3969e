"""RLHF Explorer: the router. Pages live in pages/; the logic lives in rlhf_core/."""

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import streamlit as st  # noqa: E402

from rlhf_core import hosting, runs  # noqa: E402
from rlhf_core.config import ConfigError  # noqa: E402
from ui import visitor  # noqa: E402
from ui.common import listed_runs  # noqa: E402

st.set_page_config(page_title="RLHF Explorer", layout="wide")
HERE = os.path.dirname(os.path.abspath(__file__))

PAGES = {
    "Explore": [
        st.Page("pages/train.py", title="Playground", default=True, url_path="playground"),
        st.Page("pages/compare.py", title="Runs & Compare", url_path="compare"),
    ],
    # one page per takeaway of Sun (2023); url paths are part of the app's contract
    "Labs": [
        st.Page(path, title=title, url_path=url)
        for path, title, url in (
            ("pages/lab_t1.py", "T1 · The RLHF pipeline", "lab-pipeline"),
            ("pages/lab_t2.py", "T2 · Compounding error", "lab-compounding-error"),
            ("pages/lab_t3.py", "T3 · Reward model as proxy", "lab-reward-proxy"),
            ("pages/lab_t4.py", "T4 · Action space & sparse reward", "lab-action-space"),
            ("pages/lab_t5.py", "T5 · Why PPO is stable", "lab-stability"),
        )
        if os.path.exists(os.path.join(HERE, path))
    ],
    "About": [st.Page("pages/about.py", title="About", url_path="about")],
}


def sidebar() -> None:
    with st.sidebar:
        st.markdown("### RLHF Explorer")
        st.caption("Real TRL training on small language models, live in your browser.")
        try:
            all_runs = listed_runs(runs.runs_root())
        except (runs.RunError, OSError) as e:
            st.error(f"Runs folder problem: {e}")
            return
        live = sum(r.status in ("starting", "running") for r in all_runs)
        queued = sum(r.status == "queued" for r in all_runs)
        st.caption(f"{len(all_runs)} runs · {live} training · {queued} queued · cap {runs.default_cap()}")
        host = hosting.settings()
        if host.hosted and visitor.unknown_yet():
            st.caption("Shared server: recognising this browser…")
        elif host.hosted:
            mine = len(runs.visitor_runs(visitor.tag(), listed=all_runs))
            st.caption(f"Shared server: you can stop and retune the runs you start and watch everyone's "
                       f"(yours queued or training: {mine} of {host.runs_per_visitor}).")
        else:
            root = runs.runs_root()  # relative to where the app was started, when it lies inside it
            st.caption(f"Runs folder: `{os.path.relpath(root) if root.startswith(os.getcwd() + os.sep) else root}`")
        try:  # a pre-started worker makes Start -> first point about a second
            # a fresh listing, not the shared cached one: whether a run trains right now decides
            # the priority a new warm worker boots at
            runs.top_up_pool(runs.ensure_root(), owner_pid=os.getpid())
            runs.prune_now_and_then()  # old runs and the disk cap, when the operator set them
        except (OSError, runs.RunError):
            pass


try:
    hosting.settings()
except ConfigError as e:  # a malformed operator setting: say which, serve nothing
    st.error(f"This server's settings are invalid: {e}")
    st.stop()
navigation = st.navigation(PAGES)
sidebar()
navigation.run()
visitor.identify()
