"""The base layer, below every stage: the error taxonomy and the Webflow data models.

Sources (:mod:`flowport.connectors`), mappings (:mod:`flowport.mappings`) and the engine
(:mod:`flowport.pipeline`) all import from here, and this package imports none of them, so no
arrow runs back up (``tests/test_import_graph.py`` holds that).
"""

from __future__ import annotations
