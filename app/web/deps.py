"""Typed FastAPI dependencies: database session, current user, role guards, CSRF, actor."""

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.core.errors import InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from app.web import forwarded
from models.audit import ActorKind
from models.users import Role, User

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfError(PermissionDenied):
    def __init__(self) -> None:
        super(PermissionDenied, self).__init__(
            "Le formulaire a expiré. Rechargez la page et réessayez.",
            "The form has expired. Reload the page and try again.",
        )


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def _rollback_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One session per request, committed when the route returns without error.

    The dependency has the "function" scope: the commit happens before the response is
    sent, so a client that follows a redirect reads what was just written, and a commit
    that fails becomes an error response instead of a success whose data is lost.

    The session is created on the event loop (no I/O: it connects on first use, in the
    route's worker thread); only the commit goes to a worker thread. A sync dependency
    would cost a thread hop to open and another to close, on every request.
    """
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_rollback_and_close, session)
        raise
    with anyio.CancelScope(shield=True):  # a client gone mid-commit changes nothing
        await run_in_threadpool(_commit_and_close, session)


SessionDep = Annotated[Session, Depends(get_db, scope="function")]
T = TypeVar("T")


def run_in_session(request: Request, work: Callable[[Session], T]) -> T:
    """``get_db``'s contract for a hot route that makes its one worker-thread hop itself:
    ``work`` runs in a request session that is committed before the route answers, or
    rolled back when it raises."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        try:
            result = work(session)
            session.commit()
            return result
        except Exception:
            session.rollback()
            raise


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


async def verify_csrf(request: Request) -> None:
    """Unsafe requests made with the session cookie must carry the session's token."""
    if request.method not in UNSAFE_METHODS or "session" not in request.scope:
        return
    expected = request.session.get("csrf")
    if not expected and not request.session.get("uid"):
        return  # no session: nothing a forged request could use
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(expected.encode(), _utf8(sent)):
        raise CsrfError()


MAX_RECORD_ID = 2**31 - 1  # the largest id a table holds (PostgreSQL INTEGER)


async def check_path_and_query(request: Request) -> None:
    """A NUL character in the query string is refused (PostgreSQL cannot store it; link
    tokens in the path are only ever compared as hashes, and their pages answer "unknown");
    an ``…_id`` path parameter beyond any table's ids names no record: 404, before the
    database is asked (SQLite and PostgreSQL would fail on the overflow)."""
    if any("\x00" in text for text in request.query_params.values()):
        raise InvalidInput(
            "Caractère interdit dans la requête.", "Forbidden character in the request."
        )
    for name, value in request.path_params.items():
        if not name.endswith("_id"):  # a link token may well be all digits: its page says so
            continue
        text = str(value).lstrip("+-")
        if text.isascii() and text.isdigit() and int(text) > MAX_RECORD_ID:
            raise NotFound("Élément introuvable.", "Not found.")


def optional_user(request: Request, session: SessionDep) -> User | None:
    """The logged-in staff member, if any (inactive accounts are logged out)."""
    uid = request.session.get("uid") if "session" in request.scope else None
    if uid is None:
        return None
    user = session.get(User, uid)
    if user is None or not user.is_active or request.session.get("pwd") != user.password_hash[-16:]:
        request.session.clear()
        return None
    # Detached with its attributes loaded: an error page rendered after the request's
    # transaction was rolled back can still show who is logged in.
    session.expunge(user)
    request.state.user = user
    return user


class RoleGuard:
    """Dependency allowing only the named roles; every staff route carries one."""

    def __init__(self, *roles: Role) -> None:
        if not roles:
            raise ValueError("a RoleGuard names at least one role")
        self.roles = frozenset(roles)

    def __call__(self, user: Annotated[User | None, Depends(optional_user)]) -> User:
        if user is None:
            raise NotAuthenticated()
        if user.role not in self.roles:
            raise PermissionDenied()
        return user

    def __repr__(self) -> str:
        return f"RoleGuard({', '.join(sorted(self.roles))})"


async def public() -> None:
    """Marks a route as open to anyone; routes without a guard or this mark fail at start-up.
    A coroutine, so that FastAPI calls it on the event loop: a plain function would be sent
    to a worker thread, a thread hop per public request for a mark that does nothing."""


ANY_STAFF = RoleGuard(Role.secretary, Role.physician, Role.admin)
PATIENT_STAFF = RoleGuard(Role.secretary, Role.physician)
ADMIN_ONLY = RoleGuard(Role.admin)
PHYSICIAN_ONLY = RoleGuard(Role.physician)

StaffUser = Annotated[User, Depends(ANY_STAFF)]
PatientStaffUser = Annotated[User, Depends(PATIENT_STAFF)]
AdminUser = Annotated[User, Depends(ADMIN_ONLY)]
PhysicianUser = Annotated[User, Depends(PHYSICIAN_ONLY)]


def client_address(request: Request) -> str | None:
    """The client's address; ``X-Forwarded-For`` counts only from a trusted proxy."""
    settings: Settings = request.app.state.settings
    return forwarded.client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        settings.trusted_proxies,
    )


def user_actor(request: Request, user: User) -> Actor:
    return Actor(
        kind=ActorKind.user, id=str(user.id), name=user.username, address=client_address(request)
    )
