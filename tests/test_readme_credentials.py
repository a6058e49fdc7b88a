"""The "Digital IDs" example, copied out of docs/signals-and-credentials.md and run as written,
with a test issuer's root in ``issuers.pem`` and a test wallet presenting to it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from wallet import Issuer, Wallet, sd_jwt_credential, sd_jwt_presentation

from agegate import Keyring

PAGE = Path(__file__).resolve().parent.parent / "docs" / "signals-and-credentials.md"
ORIGIN = "https://shop.example"


def example() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Digital IDs", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]


@pytest.mark.anyio
async def test_digital_id_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issuer, wallet = Issuer(), Wallet()
    (tmp_path / "issuers.pem").write_bytes(issuer.root.public_bytes(serialization.Encoding.PEM))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    namespace: dict[str, Any] = {}
    exec(compile(example(), "docs/signals-and-credentials.md (Digital IDs)", "exec"), namespace)
    app, gate = namespace["app"], namespace["gate"]
    app.router.routes.append(Route("/wine/order", lambda _: PlainTextResponse("ordered"), methods=["POST"]))
    transport = httpx.ASGITransport(app=app)
    async with gate, httpx.AsyncClient(transport=transport, base_url=ORIGIN) as c:
        assert (await c.post("/agegate", json={"birth_date": "1980-05-05"})).json() == {"outcome": "allowed"}
        assert (await c.post("/wine/order")).status_code == 428  # a typed date is not enough here
        request = await c.post("/agegate/credential/request", json={}, headers={"origin": ORIGIN})
        nonce = request.json()["data"]["nonce"]
        jwt, disclosures = sd_jwt_credential(issuer, wallet)
        vp = sd_jwt_presentation(jwt, disclosures, wallet, nonce=nonce, audience=f"origin:{ORIGIN}")
        answer = {"protocol": "openid4vp-v1-unsigned", "data": {"vp_token": {"age_sd_jwt": [vp]}}}
        verified = await c.post("/agegate/credential", json=answer, headers={"origin": ORIGIN})
        assert verified.json() == {"outcome": "allowed", "verified": True}
        assert (await c.post("/wine/order")).text == "ordered"
