"""attention_view: no network probe, no inlined 1.3 MB bundle, the bundle served by our Jupyter server extension."""
from __future__ import annotations

import inspect
import json
import re
import socket
import sys
import time
import urllib.request

import pytest
import torch

from induction_course import jupyter_extension
from induction_course.plotting import AttentionView, attention_view


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test at once."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"attention_view touched the network: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    import circuitsvis.utils.render as cv_render
    monkeypatch.setattr(cv_render, "internet_on", refuse)


def _pattern(heads=4, pos=12, seed=0):
    scores = torch.randn(heads, pos, pos, generator=torch.Generator().manual_seed(seed))
    return scores.masked_fill(torch.triu(torch.ones(pos, pos, dtype=torch.bool), 1), float("-inf")).softmax(-1)


def _props(html: str) -> dict:
    match = re.search(r"var id = \"[^\"]+\", props = (\{.*?\}), w = window;", html)
    assert match, "no props in the view's script"
    return json.loads(match.group(1))


def test_public_signature_is_kept():
    assert list(inspect.signature(attention_view).parameters) == ["tokens", "pattern", "head_names", "open_on"]


def test_renders_without_touching_the_network_or_waiting(no_network, monkeypatch):
    """circuitsvis's own render probes the network and waits up to 1 s for it; ours neither connects (the
    fixture refuses every connection) nor sleeps, on any render."""
    def no_sleep(seconds):
        raise AssertionError(f"attention_view slept {seconds} s")

    monkeypatch.setattr(time, "sleep", no_sleep)
    view = attention_view([str(i) for i in range(12)], _pattern())
    htmls = [view._repr_html_() for _ in range(10)]
    assert all(jupyter_extension.bundle_route() in html for html in htmls)


def test_output_is_small_and_carries_no_bundle(no_network):
    html = attention_view([str(i) for i in range(12)], _pattern())._repr_html_()
    bundle = jupyter_extension.bundle_path().read_text()
    assert len(bundle) > 1_000_000, "circuitsvis's bundle is the 1.3 MB this test guards against"
    assert len(html) < 10_000, f"{len(html)} characters for a 4-head, 12-token view"
    assert "var CircuitsVis=" not in html and bundle[:2000] not in html
    assert jupyter_extension.bundle_route() in html
    # A long sequence stays reasonable too: values are rounded to 4 decimals.
    big = attention_view([str(i) for i in range(101)], _pattern(heads=8, pos=101))._repr_html_()
    assert len(big) < 600_000, len(big)


def test_only_colab_gets_the_cdn_fallback(no_network, monkeypatch):
    """Anywhere but Colab the view names no web address (the page loads nothing from the web)."""
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    view = attention_view(list("abc"), _pattern(heads=1, pos=3))
    assert not re.search(r"https?:", view._repr_html_())
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-simulated")
    assert f'import("{jupyter_extension.cdn_url()}")' in view._repr_html_()


def test_props_are_the_pattern_tokens_and_head_names():
    pattern = _pattern(heads=2, pos=5)
    props = _props(attention_view(list("abcde"), pattern, head_names=["L0H0", "L0H1"])._repr_html_())
    assert props["tokens"] == list("abcde") and props["attentionHeadNames"] == ["L0H0", "L0H1"]
    assert torch.allclose(torch.tensor(props["attention"], dtype=torch.float64), pattern.double(), atol=1e-4)
    default = _props(attention_view(list("abcde"), pattern)._repr_html_())
    assert default["attentionHeadNames"] == ["head 0", "head 1"]


def test_tokens_cannot_break_out_of_the_script():
    html = attention_view(["</script><b>x", "&"], torch.ones(1, 2, 2) / 2)._repr_html_()
    assert html.count("</script>") == 1 and "<b>x" not in html
    assert _props(html)["tokens"] == ["</script><b>x", "&"]


def test_each_view_has_its_own_element_and_a_short_text_repr():
    view = attention_view(list("abc"), torch.ones(2, 3, 3) / 3)
    ids = {re.search(r'<div id="([^"]+)"', view._repr_html_()).group(1) for _ in range(3)}
    assert len(ids) == 3
    assert repr(view) == "<attention view: 2 heads, 3 tokens>"
    assert isinstance(view, AttentionView)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="tokens do not fit"):
        attention_view(list("ab"), torch.ones(1, 3, 3))


def test_bundle_the_extension_serves_defines_circuitsvis():
    head = jupyter_extension.bundle_path().read_text()[:200]
    assert "var CircuitsVis=" in head
    version = jupyter_extension.circuitsvis_version()
    assert jupyter_extension.bundle_route() == f"induction-course/circuitsvis/{version}/iife.js"
