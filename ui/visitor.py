"""Which browser is this? On a hosted server each browser keeps a random secret token in its
localStorage, so that it survives a reload and stays out of shared URLs; the server stores only a
hash of it (runs.owner_tag) with the runs that browser starts. On a private server everyone is
the owner and nothing is mounted."""

from __future__ import annotations

import streamlit as st

from rlhf_core import hosting, runs

# Reads the token, or makes one with the browser's CSPRNG, and reports it once per page load.
_JS = """
export default function ({ data, setStateValue }) {
  if (data && data.known) return;  // the server has it: no rerun
  const KEY = "rlhf-explorer-visitor";
  let token = window.localStorage.getItem(KEY);
  if (!token || !/^[0-9a-f]{32}$/.test(token)) {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    token = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    window.localStorage.setItem(KEY, token);
  }
  setStateValue("token", token);
}
"""
_component = st.components.v2.component("rlhf_explorer_visitor", js=_JS)


def identify() -> None:
    """Mount the token reader (hosted mode only), once per page run, after the page body: its
    first report reruns the page, and a rerun asked for before the page's widgets reached the
    browser would carry none of their values, resetting every knob to its minimum."""
    if not hosting.hosted():
        return
    token = _component(key="visitor_token", data={"known": tag() is not None},
                       on_token_change=lambda: None).token
    if token and tag() is None:
        try:
            st.session_state["_visitor"] = runs.owner_tag(token)
        except runs.RunError:
            return
        st.rerun()  # once per session: draw the page again, now knowing whose it is


def tag() -> str | None:
    """This visitor's owner tag on a hosted server (None until the browser has answered, and
    always None on a private server, where runs have no owner)."""
    return st.session_state.get("_visitor") if hosting.hosted() else None


def unknown_yet() -> bool:
    """True on a hosted server in the moment before this browser has reported its token."""
    return hosting.hosted() and tag() is None

