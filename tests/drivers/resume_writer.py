"""A second process for the cross-process writer tests: ``python -m tests.drivers.resume_writer``.

Reads one JSON request from stdin — ``{"kind", "options", "path", "state": {"size", "data"} |
null, "seed", "size", "action": "flush" | "commit"}`` — builds its OWN driver with
``create_driver(kind, **options)``, resumes the writer from ``state``, writes ``size``
pseudo-random bytes (``suite.payload(size, seed)``) in 64 KiB chunks, then flushes (printing the
new state as JSON) or commits (printing ``{"committed": total size}``). A refused resume or
commit prints ``{"error": "WriterStateInvalid"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from berth_common.storage import WriterState, WriterStateInvalid, create_driver
from tests.drivers.suite import payload


async def main(request: dict[str, Any]) -> dict[str, Any]:
    """Serve one request (see the module docstring) and return the answer."""
    driver = create_driver(request["kind"], **request["options"])
    state = request["state"]
    try:
        resume = None if state is None else WriterState(state["size"], state["data"])
        writer = await driver.writer(request["path"], resume)
        data = payload(request["size"], request["seed"])
        for start in range(0, len(data), 1 << 16):
            await writer.write(data[start : start + (1 << 16)])
        if request["action"] == "commit":
            size = writer.size
            await writer.commit()
            return {"committed": size}
        flushed = await writer.flush()
        await writer.close()
        return {"size": flushed.size, "data": dict(flushed.data)}
    except WriterStateInvalid:
        return {"error": "WriterStateInvalid"}
    finally:
        await driver.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
