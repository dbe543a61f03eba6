"""Uploads that try to hurt the box are refused cleanly: a body sent without its length is cut
off at the limit on every route anyone can reach (not read, nor spooled to disk, to its end),
files whose content lies about their type, zip archives that lie about their size, audio
whose few bytes hide a long recording, and file names that are paths."""

import io
import re
import tracemalloc
import zipfile
from pathlib import Path

import anyio
import av
import numpy as np
import pytest
from sqlmodel import Session, select

from app.config.settings import Settings
from app.main import create_app
from app.services.knowledge.parsing import InvalidDocument, parse_document
from app.services.speech import transcription as speech
from app.web.route_table import route_table
from models.knowledge import KnowledgeDocument
from tests.support.knowledge_files import MARKDOWN, make_docx, make_zip_bomb
from tests.support.preconsultation import book, send

HTML = {"accept": "text/html"}
MB = 1024 * 1024
CHUNK = 64 * 1024


def _public_posts() -> list[str]:
    app = create_app(Settings(_env_file=None, database_url="sqlite://", secret_key="x"))
    paths = [
        entry.path
        for entry in route_table(app)
        if "POST" in entry.methods and entry.guard == "public"
    ]
    paths += [entry.path + "/" for entry in route_table(app) if entry.guard == "bearer"]
    app.state.engine.dispose()
    return paths


PUBLIC_POSTS = _public_posts()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small limits: the largest body accepted is (1 + 1) MB."""
    return settings.model_copy(update={"knowledge_max_upload_mb": 1, "speech_max_upload_mb": 1})


def limit_of(settings: Settings) -> int:
    return (max(settings.knowledge_max_upload_mb, settings.speech_max_upload_mb) + 1) * MB


def stream(app, path: str, *, headers: dict[str, str], first: bytes = b"", total: int = 64 * MB):
    """POST ``path`` straight to the ASGI app with a chunked body (no Content-Length) of up
    to ``total`` bytes; returns the status, the body and how many bytes the app pulled."""
    pulled = 0
    out: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if pulled == 0 and first:
            pulled += len(first)
            return {"type": "http.request", "body": first, "more_body": True}
        if pulled >= total:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += CHUNK
        return {"type": "http.request", "body": b"a" * CHUNK, "more_body": pulled < total}

    async def send(message: dict) -> None:
        out.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"transfer-encoding", b"chunked"),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    anyio.run(app, scope, receive, send)
    body = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
    return out[0]["status"], body.decode(errors="replace"), pulled


def multipart_head(filename: str, boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, {"content-type": f"multipart/form-data; boundary={boundary}"}


# -- bodies without a length -----------------------------------------------------------------


@pytest.mark.parametrize("path", PUBLIC_POSTS)
def test_an_endless_body_is_cut_off_on_every_public_route(app, settings, db, path: str) -> None:
    token = send(db, book(db).appointment_id).token
    target = path.replace("{token}", token).replace("{choice}", "accepter")
    target = re.sub(r"\{[^}]+\}", "1", target)
    limit = limit_of(settings)
    for kind in ("form", "json", "multipart"):
        headers = {
            "form": {"content-type": "application/x-www-form-urlencoded"},
            "json": {"content-type": "application/json"},
            "multipart": multipart_head("note.txt")[1],
        }[kind]
        first = multipart_head("note.txt")[0] if kind == "multipart" else b""
        status, body, pulled = stream(app, target, headers=headers, first=first)
        assert status < 500, (kind, status, body[:300])
        assert pulled <= limit + 2 * CHUNK, (kind, pulled)
        if pulled > limit:
            assert status == 413 and "trop volumineux" in body, (kind, status, body[:300])


def test_an_endless_upload_is_refused_at_the_limit_and_stores_nothing(
    app, logged_in, db: Session, settings: Settings
) -> None:
    client = logged_in("admin")
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    head, headers = multipart_head("livret.md")
    headers |= {"cookie": cookie, "x-csrf-token": client.headers["x-csrf-token"],
                "accept": "application/json"}  # fmt: skip
    status, body, pulled = stream(app, "/admin/connaissances", headers=headers, first=head)
    assert status == 413 and "trop volumineux" in body
    assert pulled <= limit_of(settings) + 2 * CHUNK
    secretary = logged_in("secretaire")
    headers |= {"cookie": "; ".join(f"{k}={v}" for k, v in secretary.cookies.items()),
                "x-csrf-token": secretary.headers["x-csrf-token"]}  # fmt: skip
    status, body, pulled = stream(app, "/api/speech/transcriptions", headers=headers, first=head)
    assert status == 413 and "trop volumineux" in body
    assert pulled <= limit_of(settings) + 2 * CHUNK
    assert db.exec(select(KnowledgeDocument)).all() == []
    assert not settings.knowledge_dir.exists() or not list(settings.knowledge_dir.iterdir())


def test_a_small_body_without_a_length_is_still_accepted(app, logged_in, db, settings) -> None:
    client = logged_in("admin")
    boundary = "b0undary"
    head, headers = multipart_head("livret.md", boundary)
    body = head + MARKDOWN + f"\r\n--{boundary}--\r\n".encode()
    headers |= {"cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items()),
                "x-csrf-token": client.headers["x-csrf-token"], "accept": "text/html"}  # fmt: skip
    status, text, _ = stream(app, "/admin/connaissances", headers=headers, first=body, total=0)
    assert status == 303, text[:500]
    [document] = db.exec(select(KnowledgeDocument)).all()
    assert document.filename == "livret.md"


# -- knowledge documents ---------------------------------------------------------------------


def upload(client, filename: str, content: bytes):
    return client.post(
        "/admin/connaissances",
        files={"file": (filename, content, "application/octet-stream")},
        headers=HTML,
        follow_redirects=False,
    )


def lying_zip(real: int = 100 * MB, declared: int = 1000) -> bytes:
    """A DOCX-shaped archive whose document inflates to ``real`` bytes while its headers
    declare ``declared``: a ratio check on the declared sizes lets it through."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            for _ in range(real // MB):
                member.write(b"\0" * MB)
    data = bytearray(out.getvalue())
    name = b"word/document.xml"
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                data[start + offset : start + offset + 4] = declared.to_bytes(4, "little")
            start += 4
    return bytes(data)


def test_a_zip_lying_about_its_size_is_never_inflated() -> None:
    bomb = lying_zip()
    assert len(bomb) < MB
    tracemalloc.start()
    try:
        with pytest.raises(InvalidDocument, match="illisible"):
            parse_document("piege.docx", bomb, max_bytes=2 * MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * MB  # the 100 MB member was never expanded


BAD_DOCUMENTS = [
    ("facture.pdf", b"MZ\x90\x00\x03" + b"\0" * 200, "ne correspond pas à un document PDF"),
    ("rapport.docx", b"MZ\x90\x00\x03" + b"\0" * 200, "ne correspond pas à un document Word"),
    ("notes.txt", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "ne correspond pas à un document texte"),
    ("piege.odt", make_zip_bomb(), "Format non pris en charge"),
    ("piege.docx", lying_zip(real=8 * MB), "illisible"),
    ("../../../etc/cron.d/evil.md", MARKDOWN, "Nom de fichier invalide"),
    ("/etc/passwd.md", MARKDOWN, "Nom de fichier invalide"),
    ("..\\..\\evil.md", MARKDOWN, "Nom de fichier invalide"),
    ("sous/dossier.md", MARKDOWN, "Nom de fichier invalide"),
    ("..", MARKDOWN, "Nom de fichier invalide"),
    (".htaccess.md", MARKDOWN, "Nom de fichier invalide"),
]


def test_bad_documents_and_path_names_are_refused(
    logged_in, db: Session, settings: Settings, tmp_path: Path
) -> None:
    client = logged_in("admin")
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    for filename, content, message in BAD_DOCUMENTS:
        response = upload(client, filename, content)
        assert response.status_code == 422, (filename, response.text[-500:])
        assert message in response.text and 'role="alert"' in response.text, filename
    assert db.exec(select(KnowledgeDocument)).all() == []
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert [p for p in written if "knowledge" in p.parts] == []
    assert not Path("/etc/cron.d/evil.md").exists()


@pytest.mark.parametrize(
    ("uploaded", "kept"),
    [
        ("<img src=x onerror=alert(1)> tarifs %2e%2e.md", None),
        # the multipart parser keeps only the base name of a Windows path
        ("C:\\Windows\\System32\\evil.md", "evil.md"),
    ],
    ids=["markup", "windows-path"],
)
def test_an_odd_name_is_kept_as_a_label_and_stored_under_a_generated_one(
    logged_in, db: Session, settings: Settings, uploaded: str, kept: str | None
) -> None:
    client = logged_in("admin")
    assert upload(client, uploaded, MARKDOWN).status_code == 303
    [document] = db.exec(select(KnowledgeDocument)).all()
    assert document.filename == (kept or uploaded)
    assert re.fullmatch(r"\d+-[0-9a-f]{16}\.md", document.stored_path)
    [stored] = list(settings.knowledge_dir.iterdir())
    assert stored.name == document.stored_path and stored.read_bytes() == MARKDOWN
    page = client.get("/admin/connaissances", headers=HTML).text
    assert "<img src=x" not in page
    if kept is None:
        assert "&lt;img src=x onerror=alert(1)&gt; tarifs" in page


def test_a_real_docx_still_passes_the_upload_checks(logged_in, db: Session) -> None:
    client = logged_in("admin")
    assert upload(client, "consignes.docx", make_docx()).status_code == 303
    assert len(db.exec(select(KnowledgeDocument)).all()) == 1


# -- audio -----------------------------------------------------------------------------------


def silent_mp3(seconds: float, rate: int = 8000) -> bytes:
    """Seconds of silence, very compressed (8 kbit/s): a few bytes for a long recording."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream_ = container.add_stream("libmp3lame", rate=rate, layout="mono")
        stream_.bit_rate = 8000
        samples = np.zeros((1, int(seconds * rate)), dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream_.encode(frame), *stream_.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def transcribe(client, filename: str, data: bytes):
    return client.post(
        "/api/speech/transcriptions",
        files={"file": (filename, data, "audio/wav")},
        headers={"accept": "application/json"},
    )


def test_audio_that_is_not_audio_or_hides_a_long_recording_is_refused_undecoded(
    app, logged_in, monkeypatch
) -> None:
    import faster_whisper

    def never(*args, **kwargs):
        raise AssertionError("decoded although it should have been refused first")

    monkeypatch.setattr(faster_whisper, "decode_audio", never)
    app.state.settings = app.state.settings.model_copy(update={"speech_max_seconds": 30})
    client = logged_in("secretaire")
    cases = [
        ("programme.wav", b"MZ\x90\x00\x03" + b"\0" * 4000, 415, "pas un enregistrement audio"),
        ("piege.m4a", make_zip_bomb(), 415, "pas un enregistrement audio"),
        ("../../etc/passwd.wav", b"root:x:0:0:root:/root:/bin/bash\n" * 40, 415, "audio"),
    ]
    long = silent_mp3(300)
    assert len(long) < 400 * 1024  # five minutes in a small file
    cases.append(("appel.mp3", long, 413, "trop long"))
    for filename, data, status, words in cases:
        response = transcribe(client, filename, data)
        assert response.status_code == status, (filename, response.text)
        assert words in response.json()["detail"], response.json()
    assert speech.SAMPLE_RATE  # the decoder was never reached (see ``never``)
