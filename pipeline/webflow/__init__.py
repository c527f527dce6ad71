"""Talking to Webflow's Data API v2: :mod:`.client` (one attempt per call, every answer
classified into :mod:`flowport.base.errors`), and :mod:`.reliable` (``WebflowApi``: typed calls
with retries, the shared rate budget and request counts, each saying whether it may be sent
again after a lost answer). The models of what Webflow answers live in
:mod:`flowport.base.models`, below every stage."""

from __future__ import annotations
