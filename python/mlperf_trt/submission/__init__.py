"""The submission layer (DESIGN §2): compliance tests, accuracy-log truncation, the submission tree,
its self-check and the run report (SPEC §4-§6).

The submodules are imported on use: `compliance` pulls in the harness (it runs LoadGen), while
`truncate`, `tree`, `check` and `report` only read files.
"""

from __future__ import annotations

__all__ = ["check", "commands", "compliance", "report", "tree", "truncate"]
