"""The webhook URL rule (services/destinations.py), with stub resolvers: no DNS is asked and no
connection is opened. A URL must be https:// or http:// to a host whose every address is public,
unless the address lies in an allowed network; the same check runs before each connection."""

from __future__ import annotations

import ipaddress

import pytest

from scn_workflow.services.destinations import Destinations, Refused, check_secret
from scn_workflow.services.mailer import one_line
from scn_workflow.services.webhooks import DeliveryFailed, post

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def no_dns(host, port):
    raise AssertionError(f"{host} is an address; nothing should resolve it")


def answering(*addresses):
    """A resolver that answers every name with `addresses`, and counts the questions."""
    def resolve(host, port):
        resolve.asked.append((host, port))
        return list(addresses)
    resolve.asked = []
    return resolve


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.0.0.1:8080/hook", "http://10.0.0.1/", "http://172.16.5.4/",
    "http://192.168.1.1/", "http://[::1]/", "http://169.254.169.254/latest/meta-data/", "http://0x7f000001/",
    "http://2130706433/", "http://127.1/", "http://0177.0.0.1/", "http://0.0.0.0/", "http://[::]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:10.0.0.1]/", "http://[fe80::1]/", "http://[fc00::1]/",
    "http://224.0.0.1/", "http://[ff02::1]/", "http://240.0.0.1/", "http://100.64.0.1/",
    "http://255.255.255.255/", "https://[2002:7f00:1::]/"])
def test_an_address_that_is_not_public_is_refused_whatever_its_spelling(url):
    with pytest.raises(Refused, match="is not public"):
        Destinations(resolve=no_dns).check(url)


@pytest.mark.parametrize("url, rule", [
    ("ftp://93.184.216.34/", "must start with https:// or http://"),
    ("file:///etc/passwd", "must start with https:// or http://"),
    ("gopher://93.184.216.34/", "must start with https:// or http://"),
    ("http:///path", "must name a host"),
    ("http://user:pw@93.184.216.34/", "must not carry a user name or password"),
    ("http://93.184.216.34:99999/", "not valid"),
])
def test_a_url_of_another_kind_is_refused_with_the_rule_it_breaks(url, rule):
    with pytest.raises(Refused, match=rule):
        Destinations(resolve=no_dns).check(url)


def test_a_public_address_passes_and_keeps_its_host_for_the_host_header():
    target = Destinations(resolve=no_dns).check("https://93.184.216.34:8443/scn/hook?x=1")
    assert (target.addresses, target.netloc, target.path, target.port) == (
        ("93.184.216.34",), "93.184.216.34:8443", "/scn/hook?x=1", 8443)


def test_a_name_that_resolves_to_a_private_address_is_refused():
    resolve = answering("10.1.2.3")
    with pytest.raises(Refused, match="The host hooks.agency.example resolves to 10.1.2.3, which is not public"):
        Destinations(resolve=resolve).check("https://hooks.agency.example/scn")
    assert resolve.asked == [("hooks.agency.example", 443)]


def test_a_name_with_one_private_address_among_public_ones_is_refused():
    with pytest.raises(Refused, match="resolves to 169.254.169.254"):
        Destinations(resolve=answering("93.184.216.34", "169.254.169.254")).check("http://mixed.example/")


def test_a_name_that_resolves_to_an_ipv4_mapped_loopback_address_is_refused():
    with pytest.raises(Refused, match="::ffff:"):
        Destinations(resolve=answering("::ffff:127.0.0.1")).check("http://mapped.example/")


def test_a_name_that_does_not_resolve_is_refused():
    def nowhere(host, port):
        raise OSError("Name or service not known")
    with pytest.raises(Refused, match="The host gone.example could not be resolved"):
        Destinations(resolve=nowhere).check("https://gone.example/")
    with pytest.raises(Refused, match="could not be resolved"):
        Destinations(resolve=answering()).check("https://empty.example/")


def test_an_allowed_network_lets_its_addresses_through_and_no_others():
    allowed = Destinations(LOOPBACK, resolve=answering("127.0.0.1"))
    assert allowed.check("http://receiver.test:8080/").addresses == ("127.0.0.1",)
    assert allowed.check("http://127.0.0.2/").addresses == ("127.0.0.2",)
    assert allowed.check("http://[::ffff:127.0.0.1]/").addresses == ("::ffff:7f00:1",)
    for url in ("http://[::1]/", "http://10.0.0.1/", "http://169.254.169.254/"):
        with pytest.raises(Refused):
            allowed.check(url)


def test_the_connect_time_check_refuses_a_public_looking_name_that_resolves_to_a_private_address():
    """The same rule before each call: the stub answers 10.0.0.1, so no connection is opened
    (there is nothing listening, and a connection attempt would show as 'did not answer')."""
    resolve = answering("10.0.0.1")
    with pytest.raises(DeliveryFailed, match="was not called: The host hooks.agency.example resolves to 10.0.0.1"):
        post("https://hooks.agency.example/scn", "s" * 20, "nomination.accepted", "e-1", b"{}",
             to=Destinations(resolve=resolve))
    assert resolve.asked == [("hooks.agency.example", 443)]  # resolved once, then refused


def test_the_connect_time_check_refuses_a_literal_private_address_saved_before_the_rule():
    with pytest.raises(DeliveryFailed, match="The address 169.254.169.254 is not public"):
        post("http://169.254.169.254/latest", "s" * 20, "nomination.accepted", "e-1", b"{}",
             to=Destinations(resolve=no_dns))


@pytest.mark.parametrize("secret", [None, "", "short-secret"])
def test_a_webhook_without_a_secret_of_16_characters_is_never_called(secret):
    resolve = answering("127.0.0.1")
    with pytest.raises(DeliveryFailed, match="no secret of 16 characters or more"):
        post("http://receiver.test/", secret, "nomination.accepted", "e-1", b"{}",
             to=Destinations(LOOPBACK, resolve=resolve))
    assert resolve.asked == []  # refused before even resolving


def test_a_url_needs_a_secret_of_16_characters_and_no_url_needs_none():
    assert check_secret("https://93.184.216.34/", None) == "A webhook URL needs a secret of at least 16 characters."
    assert check_secret("https://93.184.216.34/", "x" * 15) is not None
    assert check_secret("https://93.184.216.34/", "x" * 16) is None
    assert check_secret(None, None) is None and check_secret("", "") is None


@pytest.mark.parametrize("text, line", [
    ("[ASCN-2026-ID-001] Handover package: Khon\nKaen", "[ASCN-2026-ID-001] Handover package: Khon Kaen"),
    ("Sumedang\r\nBcc: someone@example.org", "Sumedang Bcc: someone@example.org"),
    ("Kota\u2028Kinabalu\x00\x1b ", "Kota Kinabalu"),
])
def test_a_header_gets_one_line_whatever_the_name_holds(text, line):
    assert one_line(text) == line
