"""``edabus certs``: a CA, certificates and Zenoh configs for a closed bus (mutual TLS and an ACL).

It shells out to ``openssl`` (no Python dependency) and writes, in one directory:

- ``ca.pem``, ``ca.key``: a certificate authority made for this bus;
- ``router.pem``, ``router.key``: the router's certificate, for the host clients dial;
- per app X: ``node-X.pem``/``.key`` (CN ``edabus-node-X``) and ``publisher-X.pem``/``.key``
  (CN ``edabus-publisher-X``);
- ``router.json5``: a router that accepts mutual-TLS links only and lets each
  certificate do only what its common name is allowed (`acl`);
- ``node-X.json5``, ``publisher-X.json5``: client configs for ``--config``.

An app's certificates cover its keys by convention: app X's message keys live
under ``X/**`` (the bank's under ``bank/**``). docs/security.md says what each
certificate may do, and what the ACL cannot express.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["APP_NAME", "CertsError", "acl", "make_closed_bus", "node_cn", "publisher_cn"]

APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # one key chunk, and a plain common name
_MESSAGES_ALL = [
    "put",
    "delete",
    "declare_subscriber",
    "query",
    "reply",
    "declare_queryable",
    "liveliness_token",
    "liveliness_query",
    "declare_liveliness_subscriber",
]
# The queries a publisher (edabus publish, request, status; edabus.close()) sends to its app's
# nodes, besides catalogs (anyone's). Not `actors`: a node's live actor keys (account ids, say)
# are data: `edabus status --actors` needs a node certificate.
_NODE_LOOKUPS = ["validate", "barrier", "stats"]
_CATALOGS = "@edabus/node/*/*/catalog"


class CertsError(Exception):
    """openssl is missing or failed, or the directory already holds a CA: one line for the user."""


def node_cn(app: str) -> str:
    """The common name of app ``app``'s node certificate."""
    return f"edabus-node-{app}"


def publisher_cn(app: str) -> str:
    """The common name of app ``app``'s publisher certificate."""
    return f"edabus-publisher-{app}"


def _node_keys(app: str) -> list[str]:
    """What a node of ``app`` may use in every way: its keys, and its own part of ``@edabus/**``."""
    return [
        f"{app}/**",
        f"@edabus/to/{app}/**",  # routed messages for its groups' members
        f"@edabus/credit/{app}/**",  # its groups' checkpoint queryables
        f"@edabus/member/{app}/**",  # its groups' member tokens
        f"@edabus/identity/{app}/**",  # its answers for them: only X's nodes can prove X's members
        f"@edabus/deadletter/{app}/**",
        f"@edabus/escalation/{app}/**",
        f"@edabus/node/{app}/**",  # its tools' queryables: catalog, statistics, live actors, barrier, validation
        "@edabus/routes/**",  # the routing barriers a stopping node asks (per bus: docs/security.md)
    ]


def acl(apps: Sequence[str]) -> dict[str, Any]:
    """The ``access_control`` section of the router: default deny, one policy per certificate."""
    rules: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    rules += [
        {
            # Every bus follows @edabus/member/** (edabus.connect() routes by it), and sees every
            # app's member tokens: a new bus waits for the tokens of the nodes whose catalogs
            # answered, and catalogs are per node, not per app (docs/security.md).
            "id": "follow-members",
            "messages": ["declare_liveliness_subscriber", "liveliness_query"],
            "flows": ["ingress"],
            "permission": "allow",
            "key_exprs": ["@edabus/member/**"],
        },
        {
            # Anyone may ask who answers for a member (the proof of membership); only an
            # app's own nodes may answer for it (their node rule).
            "id": "ask-identities",
            "messages": ["query"],
            "flows": ["ingress"],
            "permission": "allow",
            "key_exprs": ["@edabus/identity/**"],
        },
        {
            "id": "hear-identities",
            "messages": ["reply", "declare_queryable"],
            "flows": ["egress"],
            "permission": "allow",
            "key_exprs": ["@edabus/identity/**"],
        },
        {
            # Every bus reads every node's catalog when it starts (what it routes, and the
            # tokens to wait for); only an app's own nodes may answer on its keys.
            "id": "ask-catalogs",
            "messages": ["query"],
            "flows": ["ingress", "egress"],
            "permission": "allow",
            "key_exprs": [_CATALOGS],
        },
        {
            "id": "hear-catalogs",
            "messages": ["reply", "declare_queryable"],
            "flows": ["egress"],
            "permission": "allow",
            "key_exprs": [_CATALOGS],
        },
        {
            "id": "see-members",
            "messages": ["liveliness_token"],
            "flows": ["egress"],
            "permission": "allow",
            "key_exprs": ["@edabus/member/**"],
        },
    ]
    for app in apps:
        lookups = [f"@edabus/node/{app}/*/{name}" for name in _NODE_LOOKUPS]
        rules += [
            {
                "id": f"node-{app}",
                "messages": _MESSAGES_ALL,
                "flows": ["ingress", "egress"],
                "permission": "allow",
                "key_exprs": _node_keys(app),
            },
            {
                # Deposits and reliable messages (puts, queries), routed or not, and checkpoints.
                "id": f"publisher-{app}-send",
                "messages": ["put", "query"],
                "flows": ["ingress"],
                "permission": "allow",
                "key_exprs": [f"{app}/**", f"@edabus/to/{app}/**", f"@edabus/credit/{app}/**"],
            },
            {
                # The lookups the command line and edabus.connect() make: catalogs, validation,
                # barriers (drain), identities (membership proof), status.
                "id": f"publisher-{app}-lookups",
                "messages": ["query"],
                "flows": ["ingress"],
                "permission": "allow",
                "key_exprs": lookups,
            },
            {
                # The one declaration a publisher makes besides following members: its routing
                # barrier, which a stopping node asks so that no routed message reaches it late.
                "id": f"publisher-{app}-barrier",
                "messages": ["declare_queryable", "reply"],
                "flows": ["ingress"],
                "permission": "allow",
                "key_exprs": ["@edabus/routes/*/barrier"],
            },
            {
                "id": f"publisher-{app}-barrier-asked",
                "messages": ["query"],
                "flows": ["egress"],
                "permission": "allow",
                "key_exprs": ["@edabus/routes/*/barrier"],
            },
            {
                # What flows back: replies, and the declarations of the
                # subscribers and queryables it sends to (Zenoh routes a client's puts and queries
                # by them: refused, a client loses messages).
                "id": f"publisher-{app}-receive",
                "messages": ["reply", "declare_subscriber", "declare_queryable"],
                "flows": ["egress"],
                "permission": "allow",
                "key_exprs": [f"{app}/**", f"@edabus/to/{app}/**", f"@edabus/credit/{app}/**", *lookups],
            },
        ]
        subjects += [
            {"id": f"nodes-{app}", "cert_common_names": [node_cn(app)]},
            {"id": f"publishers-{app}", "cert_common_names": [publisher_cn(app)]},
        ]
        policies += [
            {
                "rules": [
                    f"node-{app}",
                    "follow-members",
                    "see-members",
                    "ask-identities",
                    "hear-identities",
                    "ask-catalogs",
                    "hear-catalogs",
                ],
                "subjects": [f"nodes-{app}"],
            },
            {
                "rules": [
                    "follow-members",
                    "see-members",
                    "ask-identities",
                    "hear-identities",
                    "ask-catalogs",
                    "hear-catalogs",
                    f"publisher-{app}-send",
                    f"publisher-{app}-lookups",
                    f"publisher-{app}-barrier",
                    f"publisher-{app}-barrier-asked",
                    f"publisher-{app}-receive",
                ],
                "subjects": [f"publishers-{app}"],
            },
        ]
    return {
        "enabled": True,
        "default_permission": "deny",
        "rules": rules,
        "subjects": subjects,
        "policies": policies,
    }


def _endpoint(host: str, port: int) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"tls/{host}:{port}"
    return f"tls/[{host}]:{port}" if address.version == 6 else f"tls/{host}:{port}"  # noqa: PLR2004


def _san(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"


class _OpenSSL:
    def __init__(self, days: int) -> None:
        found = shutil.which("openssl")
        if found is None:
            msg = "openssl not found on PATH: edabus certs needs the openssl command"
            raise CertsError(msg)
        self.path = found
        self.days = str(days)

    def __call__(self, *args: str) -> None:
        try:
            subprocess.run(  # noqa: S603 - openssl with our own arguments
                [self.path, *args], check=True, capture_output=True, text=True, timeout=60
            )
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or exc.stdout or "").strip().splitlines()
            detail = last[-1] if last else f"exit status {exc.returncode}"
            msg = f"openssl {args[0]} failed: {detail}"
            raise CertsError(msg) from None
        except subprocess.TimeoutExpired:
            msg = f"openssl {args[0]} ran past 60 s"
            raise CertsError(msg) from None

    def key(self, path: Path) -> None:
        """A P-256 key (PKCS#8), readable by its owner only."""
        self("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
        path.chmod(0o600)

    def ca(self, out: Path) -> None:
        self.key(out / "ca.key")
        self(
            "req", "-x509", "-new", "-key", str(out / "ca.key"), "-out", str(out / "ca.pem"),
            "-days", self.days, "-subj", "/CN=edabus CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, out: Path, work: Path, name: str, cn: str, san: str) -> None:
        """``name.pem`` and ``name.key`` signed by the CA in ``out``."""
        self.key(out / f"{name}.key")
        csr, ext = work / f"{name}.csr", work / f"{name}.ext"
        self("req", "-new", "-key", str(out / f"{name}.key"), "-out", str(csr), "-subj", f"/CN={cn}")
        ext.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName={san}\n"
        )
        self(
            "x509", "-req", "-in", str(csr), "-CA", str(out / "ca.pem"), "-CAkey", str(out / "ca.key"),
            "-set_serial", f"0x{secrets.randbits(120):x}", "-days", self.days,
            "-extfile", str(ext), "-out", str(out / f"{name}.pem"),
        )  # fmt: skip


def _write_json5(path: Path, header: str, body: dict[str, Any]) -> None:
    comment = "".join(f"// {line}".rstrip() + "\n" for line in header.splitlines())
    path.write_text(comment + json.dumps(body, indent=2) + "\n")


def _tls_session(out: Path, mode: str, endpoints: dict[str, Any], tls: dict[str, Any]) -> dict[str, Any]:
    """A Zenoh config of ``mode`` that speaks mutual TLS only, with the CA in ``out``, multicast off."""
    return {
        "mode": mode,
        **endpoints,
        "scouting": {"multicast": {"enabled": False}},
        "transport": {
            "link": {
                "protocols": ["tls"],
                "tls": {"root_ca_certificate": str(out / "ca.pem"), "enable_mtls": True, **tls},
            }
        },
    }


def _client(out: Path, endpoint: str, name: str) -> dict[str, Any]:
    certificate = {"connect_certificate": str(out / f"{name}.pem"), "connect_private_key": str(out / f"{name}.key")}
    return _tls_session(out, "client", {"connect": {"endpoints": [endpoint]}}, certificate)


def make_closed_bus(
    directory: str | os.PathLike[str],
    apps: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 7447,
    days: int = 365,
    force: bool = False,
) -> list[Path]:
    """Write the CA, the certificates and the configs of a closed bus in ``directory``; the files written."""
    out = Path(directory).resolve()
    if ((out / "ca.pem").exists() or (out / "ca.key").exists()) and not force:
        msg = f"{out} already holds a CA (ca.pem or ca.key); give --force to replace it and every certificate"
        raise CertsError(msg)
    openssl = _OpenSSL(days)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {out}: {exc.strerror}"
        raise CertsError(msg) from None
    apps = list(dict.fromkeys(apps))
    endpoint = _endpoint(host, port)
    with tempfile.TemporaryDirectory(prefix="edabus-certs-") as work:
        openssl.ca(out)
        openssl.issue(out, Path(work), "router", "edabus-router", _san(host))
        for app in apps:
            openssl.issue(out, Path(work), f"node-{app}", node_cn(app), f"DNS:{node_cn(app)}")
            openssl.issue(out, Path(work), f"publisher-{app}", publisher_cn(app), f"DNS:{publisher_cn(app)}")
    written = [out / "ca.pem", out / "ca.key", out / "router.pem", out / "router.key"]
    router = _tls_session(
        out,
        "router",
        {"listen": {"endpoints": [endpoint]}},
        {
            "listen_certificate": str(out / "router.pem"),
            "listen_private_key": str(out / "router.key"),
            "close_link_on_expiration": True,
        },
    )
    router["access_control"] = acl(apps)
    _write_json5(
        out / "router.json5",
        f"A closed edabus bus (written by edabus certs): mutual TLS only, on {endpoint},\n"
        f"and an access-control list for the apps {', '.join(apps)} (docs/security.md).\n"
        "Run it: edabus router --config router.json5",
        router,
    )
    written.append(out / "router.json5")
    for app in apps:
        for kind, cn in (("node", node_cn(app)), ("publisher", publisher_cn(app))):
            name = f"{kind}-{app}"
            _write_json5(
                out / f"{name}.json5",
                f"A {kind} of app {app} (CN={cn}) on the closed bus at {endpoint} (written by edabus certs).\n"
                + (
                    f"Use: edabus run MODULE:app --config {name}.json5"
                    if kind == "node"
                    else f"Use: edabus publish/request KEY JSON --config {name}.json5"
                ),
                _client(out, endpoint, name),
            )
            written += [out / f"{name}.pem", out / f"{name}.key", out / f"{name}.json5"]
    return written
