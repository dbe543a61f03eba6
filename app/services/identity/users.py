"""Staff accounts: creation, passwords (argon2) and authentication, slowed after failures."""

from datetime import timedelta

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput
from app.services.identity import login_throttle
from app.services.identity.trusted_devices import TrustedDevice
from models.audit import ActorKind
from models.types import utcnow
from models.users import Role, User

MIN_PASSWORD_LENGTH = 10
# argon2-cffi's default (RFC 9106, low memory): 64 MiB and 3 passes per hash.
STRONG_PROFILE = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(STRONG_PROFILE)
# Verified against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("accueil-timing-equaliser")


def use_hash_profile(profile: Parameters) -> None:
    """Set the argon2 cost of the hashes made from now on (and of the unknown-user decoy).

    Only the test suite calls this, with argon2's cheapest profile: it hashes thousands of
    passwords, and at 64 MiB each they were its largest single cost. Production never
    calls it and keeps ``STRONG_PROFILE`` (``tests/identity`` checks so in a fresh
    interpreter). Hashes made under another profile still verify, since argon2 reads the
    cost from the hash, and a successful login rehashes them with the current one."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(profile)
    _DUMMY_HASH = _hasher.hash("accueil-timing-equaliser")


class InvalidCredentials(InvalidInput):
    status_code = 401

    def __init__(self) -> None:
        super().__init__("Identifiant ou mot de passe incorrect.", "Wrong username or password.")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"Le mot de passe doit compter au moins {MIN_PASSWORD_LENGTH} caractères.",
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.",
        )


def create_user(
    session: Session,
    *,
    username: str,
    full_name: str,
    role: Role,
    password: str,
    practitioner_id: int | None = None,
    actor: audit.Actor | None = None,
) -> User:
    """Create a staff account; usernames are unique and case-insensitive."""
    username = username.strip().lower()
    if not username or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise InvalidInput(
            "Identifiant invalide (lettres, chiffres, point, tiret).",
            "Invalid username (letters, digits, dot, dash).",
        )
    _check_password_strength(password)
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(
            f"L'identifiant « {username} » existe déjà.", f"'{username}' already exists."
        )
    user = User(
        username=username,
        full_name=full_name.strip() or username,
        role=Role(role),
        password_hash=hash_password(password),
        practitioner_id=practitioner_id,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor or audit.Actor.system("cli"),
        "user.create",
        record_type="user",
        record_id=user.id,
        details={"role": str(role)},
    )
    return user


def set_password(session: Session, user: User, password: str, actor: audit.Actor) -> None:
    _check_password_strength(password)
    user.password_hash = hash_password(password)
    session.add(user)
    audit.record(session, actor, "user.set_password", record_type="user", record_id=user.id)


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    address: str | None,
    max_failures: int,
    window: timedelta,
    first_delay: timedelta = timedelta(seconds=30),
    max_delay: timedelta | None = None,
    device: TrustedDevice | None = None,
) -> User:
    """Check a login, slowed down (never locked) after repeated failures: see
    ``login_throttle``. ``device`` is the browser's trusted-device cookie, if any; it only
    counts for the accounts it names. Raises ``InvalidCredentials`` or ``LoginSlowedDown``."""
    username = username.strip().lower()
    policy = login_throttle.Policy(
        free_failures=max_failures,
        window=window,
        first_delay=first_delay,
        max_delay=window if max_delay is None else max_delay,
    )
    user = session.exec(select(User).where(User.username == username)).first()
    device_id = device.id_for(user.id) if device and user else None
    actor = audit.Actor(kind=ActorKind.anonymous, name=username, address=address)
    try:
        login_throttle.check(
            session, policy, utcnow(), username=username, address=address, device=device_id
        )
    except login_throttle.LoginSlowedDown as exc:
        audit.record(
            session,
            actor,
            "auth.login_blocked",
            outcome="denied",
            details={"retry_after": exc.retry_after, "trusted_device": device_id is not None},
        )
        session.commit()  # the refusal is kept even though the caller's request fails
        raise
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.is_active
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        audit.record(
            session,
            actor,
            login_throttle.FAILED,
            # A trusted device's failures are its own: they slow that device, not the account.
            record_type=login_throttle.DEVICE_RECORD if device_id else None,
            record_id=device_id,
            outcome="denied",
        )
        session.commit()  # the failure must count towards the limit
        raise InvalidCredentials()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session.add(user)
    audit.record(
        session,
        audit.Actor(kind=ActorKind.user, id=str(user.id), name=user.username, address=address),
        "auth.login",
        record_type="user",
        record_id=user.id,
    )
    return user
