"""``/api/v1/auth``: sign in with a username and password (OAuth2 password grant), refresh, sign out, and
who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from cloud.api.deps import AuthenticatorDep, ClientIpDep, SessionDep
from cloud.api.models.auth import PrincipalPublic, RefreshRequest, TokenPublic
from cloud.api.security import RESPONSE_401, UNAUTHENTICATED_HEADERS, CurrentPrincipal, Public
from cloud.auth.errors import InvalidCredentials, LoginThrottled
from cloud.auth.sessions import TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _token(pair: TokenPair) -> TokenPublic:
    return TokenPublic(
        access_token=pair.access_token,
        expires_in=pair.access_expires_in_s,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in_s,
    )


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=UNAUTHENTICATED_HEADERS)


@router.post(
    "/token",
    dependencies=[Public(rate_limit="login")],
    responses={401: RESPONSE_401},
)
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    authenticator: AuthenticatorDep,
    client_ip: ClientIpDep,
) -> TokenPublic:
    """Tokens for a username and password (form fields ``username``, ``password``). The same 401 for an
    unknown user, a wrong password and a disabled account; 429 after repeated failures."""
    try:
        pair = authenticator.login(session, form.username, form.password, client_ip)
    except LoginThrottled as error:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed sign-ins; try again later",
            headers={"Retry-After": str(error.retry_after_s)},
        ) from None
    except InvalidCredentials:
        raise _unauthorized("incorrect username or password") from None
    return _token(pair)


@router.post(
    "/refresh",
    dependencies=[Public(rate_limit="auth")],
    responses={401: RESPONSE_401},
)
def refresh(
    body: RefreshRequest, session: SessionDep, authenticator: AuthenticatorDep, client_ip: ClientIpDep
) -> TokenPublic:
    """A new access token and refresh token for a refresh token, which is used up. Showing a used refresh
    token again ends the whole session it belongs to."""
    try:
        pair = authenticator.refresh(session, body.refresh_token, client_ip)
    except InvalidCredentials:
        raise _unauthorized("invalid or expired refresh token") from None
    return _token(pair)


@router.post(
    "/logout",
    dependencies=[Public(rate_limit="auth")],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def sign_out(
    body: RefreshRequest, session: SessionDep, authenticator: AuthenticatorDep, client_ip: ClientIpDep
) -> None:
    """End the session a refresh token belongs to (its access tokens expire by themselves). 204 whether or
    not the token was known."""
    authenticator.logout(session, body.refresh_token, client_ip)


@router.get("/me")
def me(principal: CurrentPrincipal) -> PrincipalPublic:
    """The caller: user or key, role, and the school or firm it is bound to."""
    return PrincipalPublic(
        kind=principal.kind,
        id=principal.id,
        name=principal.name,
        display_name=principal.display_name,
        role=principal.role,
        school_id=principal.school_id,
        firm_id=principal.firm_id,
    )
