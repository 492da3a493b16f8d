"""Who a bearer token is: static tokens of RUNNER_API_TOKENS (kept as SHA-256 digests,
compared in constant time, never logged) or JWTs verified with RUNNER_API_JWT_KEY; with
neither set, an operator token generated once into STATE_DIR/api-token."""

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.config.model import SecretRef
from runner.errors import SecretUnavailable, UsageError
from runner.settings import ROLES, Settings


@dataclass(frozen=True)
class Principal:
    """Who made a request: a token's name and role."""

    name: str
    role: str
    expires: float | None = None  # a JWT's exp: a WebSocket it opened is closed then


@dataclass(frozen=True)
class Auth:
    """Who a bearer token is. Static tokens are kept as SHA-256 digests and all compared
    (constant time, no early exit); a JWT is verified with `jwt_key` when one is set: it
    needs an `exp` at most `max_lifetime` seconds after its `iat` (or now), and the
    `audience` and `issuer` when they are set."""

    tokens: tuple[tuple[str, str, bytes], ...] = ()  # role, name, sha256(token)
    jwt_key: str | None = None
    max_lifetime: float = 3600.0
    audience: str = ""
    issuer: str = ""

    def check(self, token: str) -> Principal | None:
        """Who `token` is, or None."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found: Principal | None = None
        for role, name, known in self.tokens:
            if hmac.compare_digest(digest, known) and found is None:
                found = Principal(name, role)
        if found is None and self.jwt_key and token.count(".") == 2:
            jwt = self._jwt(token)
            found = jwt if isinstance(jwt, Principal) else None
        return found

    def refusal(self, token: str) -> str:
        """What a 401 says: why a JWT is refused (never why a static token is)."""
        why = self._jwt(token) if self.jwt_key and token.count(".") == 2 else None
        return "a valid bearer token is required" + (f" ({why})" if isinstance(why, str) else "")

    def _jwt(self, token: str) -> Principal | str:
        import jwt

        key = self.jwt_key or ""
        algorithms = (["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
                      if key.lstrip().startswith("-----BEGIN") else ["HS256", "HS384", "HS512"])
        try:
            claims = jwt.decode(token, key, algorithms=algorithms, options={"require": ["exp"]},
                                audience=self.audience or None, issuer=self.issuer or None)
        except jwt.InvalidTokenError as e:
            return f"the JWT is refused: {e}"
        exp = float(claims["exp"])
        lifetime = exp - float(claims["iat"] if "iat" in claims else time.time())
        if lifetime > self.max_lifetime:
            return (f"the JWT is valid for {lifetime:.0f} s, longer than "
                    f"RUNNER_API_JWT_MAX_LIFETIME ({self.max_lifetime:.0f} s)")
        role = claims.get("role")
        if role not in ROLES:
            return f"the JWT's role claim must be one of {', '.join(ROLES)}"
        return Principal(str(claims.get("sub") or "jwt"), str(role), exp)


def load_auth(settings: Settings, state_dir: Path,
              env: Mapping[str, str] | None = None) -> tuple[Auth, Path | None]:
    """The Auth of `settings` (references resolved here); with no token and no JWT key, an
    operator token generated once into STATE_DIR/api-token, whose path is returned."""
    from runner.executor.secrets import resolve

    env = os.environ if env is None else env
    try:
        tokens = []
        for role, name, ref in settings.api_tokens:
            value = resolve(SecretRef(ref), "RUNNER_API_TOKENS", env)
            if len(value) < 16:
                raise UsageError(f"RUNNER_API_TOKENS: the token of {name} ({ref}) is shorter "
                                 "than 16 characters; use a long random one")
            tokens.append((role, name, hashlib.sha256(value.encode()).digest()))
        key = (resolve(SecretRef(settings.api_jwt_key), "RUNNER_API_JWT_KEY", env)
               if settings.api_jwt_key else None)
    except SecretUnavailable as e:
        raise UsageError(str(e)) from None
    for name, value in (("AUDIENCE", settings.api_jwt_audience),
                        ("ISSUER", settings.api_jwt_issuer)):
        if value and not key:
            raise UsageError(f"RUNNER_API_JWT_{name} is set but RUNNER_API_JWT_KEY is not: "
                             "set the key the JWTs are verified with, or unset it")
    generated = None
    if not tokens and not key:
        generated = state_dir / "api-token"
        if not generated.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(generated, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        value = generated.read_text().strip()
        tokens.append(("operator", "local-operator", hashlib.sha256(value.encode()).digest()))
    return Auth(tuple(tokens), key, settings.api_jwt_max_lifetime, settings.api_jwt_audience,
                settings.api_jwt_issuer), generated
