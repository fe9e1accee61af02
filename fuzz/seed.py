#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the protocol transcripts (the C: lines of
protocols/tests/transcripts/<protocol>/*.txt) and a few hand-made inputs, so the
fuzzers start from real sessions instead of empty input. Session targets take a
control byte first (read size and engine answers; see each target)."""
import hashlib
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
TRANSCRIPTS = HERE.parent / "protocols" / "tests" / "transcripts"


def expand(text):
    """The transcript macros: <<N*TEXT>>, <<xHH>>, <<crlf>> (enough for seeds)."""
    text = text.replace("<<crlf>>", "\r\n")
    text = re.sub(r"<<x([0-9a-fA-F]{2})>>", lambda m: chr(int(m.group(1), 16)), text)
    text = re.sub(r"<<(\d+)\*([^<>]*)>>", lambda m: m.group(2) * min(int(m.group(1)), 300), text)
    return text.encode("latin-1", "replace")


def client_bytes(path):
    out = b""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("C: "):
            body = line[3:]
            if body.endswith("<<no-crlf>>"):
                out += expand(body[: -len("<<no-crlf>>")])
            else:
                out += expand(body) + b"\r\n"
    return out


def put(target, data):
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


for protocol, session, parser in [
    ("imap", "imap_session", "imap_parser"),
    ("pop3", "pop3_session", "pop3_parser"),
    ("lmtp", "lmtp_session", None),
]:
    folder = TRANSCRIPTS / protocol
    for path in sorted(folder.glob("*.txt")):
        data = client_bytes(path)
        # Whole session in big reads, logged in (IMAP: 0x7f) or not.
        put(session, b"\x3f" + data)
        put(session, b"\x7f" + data)
        if parser:
            for line in data.split(b"\r\n"):
                if line:
                    put(parser, line + b"\r\n")

# SASL: control byte = mechanism (low 2 bits: PLAIN, LOGIN, CRAM-MD5, SCRAM) + flags;
# 0x0b = SCRAM, raw lines, with an initial response.
put("sasl", b"\x0bn,,n=user,r=rOprNGfwEbeRWgbNEkqO\nc=biws,r=rOprNGfwEbeRWgbNEkqOfuzzNonce,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
put("sasl", b"\x08\x00user\x00pencil")
put("sasl", b"\x01user\npencil")
put("sasl", b"\x06user 0123456789abcdef0123456789abcdef")
put("sasl", b"\x0fbiwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=")
# Socketmap: control byte = limit/16 and read size.
put("socketmap", b"\x40" + b"26:transport bob@example.com,25:recipient a@example.com,")
put("socketmap", b"\x40" + b"19:virtual x@example.com,")
print("seeded", sum(1 for _ in (HERE / "corpus").rglob("*") if _.is_file()), "files")
