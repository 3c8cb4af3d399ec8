"""Notification templates and settings: pure, no event loop."""

import json

import pytest

from dkron_trio.config import AgentConfig, ConfigError, load_config
from dkron_trio.notify.config import notify_config
from dkron_trio.notify.template import Mode, TemplateError, mode_for, parse_template

NASTY = 'say "hi"\n\\ and {{.JobName}} </b>'


def test_json_payload_stays_valid_json_whatever_the_output() -> None:
    text = (
        '{"job": "{{.JobName}}", "out": "{{ .Output }}", "ok": {{.Success}}, '
        '"raw": "a{{.Report}}b"}'
    )
    template = parse_template(text, mode_for(text))
    assert template.mode is Mode.JSON
    rendered = template.render({"JobName": "j", "Output": NASTY, "Success": "true", "Report": "r"})
    assert json.loads(rendered) == {"job": "j", "out": NASTY, "ok": "true", "raw": "arb"}


def test_text_payload_substitutes_as_is() -> None:
    template = parse_template("{{.JobName}}: {{.Output}}", Mode.TEXT)
    assert template.render({"JobName": "j", "Output": NASTY}) == f"j: {NASTY}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Nope}}", "unknown template variable .Nope"),
        ("{{if .Success}}x{{end}}", "unsupported template action"),
        ('{"a": {{.JobName}', "not valid JSON"),
    ],
)
def test_bad_templates_are_refused(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse_template(text, mode_for(text))


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"webhook_endpoint": "ftp://x", "webhook_payload": "x"}, "webhook-endpoint"),
        ({"webhook_endpoint": "http://127.0.0.1:1/h"}, "webhook-payload"),
        ({"webhook_payload": "x"}, "webhook-payload"),
        (
            {"webhook_endpoint": "http://h/", "webhook_payload": "x", "webhook_headers": ["bad"]},
            "webhook-headers",
        ),
        (
            {"webhook_endpoint": "http://h/", "webhook_payload": '{"a": {{.Nope}}}'},
            "webhook-payload",
        ),
        ({"pre_webhook_endpoint": "x", "pre_webhook_payload": "x"}, "pre-webhook-endpoint"),
        ({"pre_webhook_endpoint": "http://127.0.0.1:1/h"}, "pre-webhook-payload"),
        ({"pre_webhook_headers": ["A:1"]}, "pre-webhook-payload"),
        ({"mail_host": "localhost"}, "mail-port"),
        ({"mail_host": "localhost", "mail_port": 25}, "mail-from"),
        (
            {"mail_host": "h", "mail_port": 25, "mail_from": "a@b", "mail_username": "u"},
            "mail-password",
        ),
        ({"mail_from": "a@b"}, "mail-from"),
        ({"mail_port": 70000}, "mail-port"),
    ],
)
def test_agent_config_names_the_bad_notification_key(fields: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig(**fields)  # type: ignore[arg-type]
    assert caught.value.key == key


def test_notification_keys_load_from_flags_and_env() -> None:
    config = load_config(
        {"webhook-endpoint": "http://127.0.0.1:9/hook", "webhook-headers": ["X-A:1", "Host:h"]},
        {"DKRON_WEBHOOK_PAYLOAD": '{"t": "{{.Report}}"}', "DKRON_MAIL_PORT": "2525"},
        None,
        [],
    )
    assert config.webhook_headers == ("X-A:1", "Host:h")
    assert config.mail_port == 2525
    settings = notify_config(
        webhook_endpoint=config.webhook_endpoint,
        webhook_payload=config.webhook_payload,
        webhook_headers=config.webhook_headers,
    )
    assert settings.webhook is not None
    assert settings.webhook.headers == (("X-A", "1"), ("Host", "h"))
    assert settings.mail is None
