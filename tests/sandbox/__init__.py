"""Tests that hold the Webflow sandbox to the spec, the fuzzer and the official SDK."""

from __future__ import annotations
