"""SMS through a gateway: the small interface notifications use, and the shipped adapter that
posts each message as JSON to an HTTP endpoint (on-premise SMS or GSM-modem gateways)."""

from typing import Protocol

import httpx

from app.config.settings import Settings

SMS_MAX_LENGTH = 640  # four concatenated SMS at most


class SmsRejected(Exception):
    """The gateway refused the message for good (a 4xx answer: a bad number, a bad request)."""


class SmsGateway(Protocol):
    """Anything that can send one text message to one E.164 number."""

    def send(self, to: str, text: str, sender: str) -> None: ...


class HttpSmsGateway:
    """POSTs ``{"to", "text", "from"}`` to ``url`` with an optional bearer token. A 2xx answer
    is a success, a 4xx a refusal for good, anything else is tried again later."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 15.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def send(self, to: str, text: str, sender: str) -> None:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        response = httpx.post(
            self.url,
            json={"to": to, "text": text[:SMS_MAX_LENGTH], "from": sender},
            headers=headers,
            timeout=self.timeout,
        )
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise SmsRejected(f"gateway refused the message ({response.status_code})")
        response.raise_for_status()


def gateway_from_settings(settings: Settings) -> SmsGateway | None:
    """The configured gateway, or ``None`` when SMS is not set up (the default)."""
    if not settings.sms_gateway_url:
        return None
    token = settings.sms_gateway_token.get_secret_value() if settings.sms_gateway_token else None
    return HttpSmsGateway(settings.sms_gateway_url, token)
