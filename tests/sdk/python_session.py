#!/usr/bin/env python3
"""One session of Twilio's official Python SDK (PyPI `twilio`, pinned in scripts/test) against
verifyd's /v2 face, changed only by its base URL, exactly as a backend would switch:

    client = Client(ACCOUNT_SID, API_KEY)
    client.verify.base_url = VERIFYD_SDK_BASE_URL

Run by tests/api/v2_sdk.rs with the SDK pointed at `prism proxy --errors` in front of verifyd.
Every exchange is appended to VERIFYD_SDK_LOG (JSON lines) for the test's own spec check, and
printed abbreviated on stdout. Exits non-zero, naming the step, on anything unexpected.

Environment: VERIFYD_SDK_BASE_URL (where the SDK sends), VERIFYD_URL (verifyd itself, for the
dev outbox), VERIFYD_ACCOUNT_SID, VERIFYD_API_KEY, VERIFYD_SERVICE_SID, VERIFYD_SDK_LOG.
"""

import datetime
import json
import os
import sys
import urllib.parse
import urllib.request

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

BASE = os.environ["VERIFYD_SDK_BASE_URL"]
DIRECT = os.environ["VERIFYD_URL"]
ACCOUNT = os.environ["VERIFYD_ACCOUNT_SID"]
KEY = os.environ["VERIFYD_API_KEY"]
SERVICE = os.environ["VERIFYD_SERVICE_SID"]
LOG = os.environ["VERIFYD_SDK_LOG"]
NUMBER = "+14155552671"


def short(text, limit=160):
    return text if len(text) <= limit else text[:limit] + "…"


class Recording(TwilioHttpClient):
    """The SDK's own HTTP client, recording each exchange."""

    def request(self, method, url, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        response = super().request(method, url, params=params, data=data, headers=headers,
                                   auth=auth, timeout=timeout, allow_redirects=allow_redirects)
        parsed = urllib.parse.urlsplit(url)
        query = urllib.parse.urlencode(params or {})
        target = parsed.path + ("?" + parsed.query if parsed.query else "") + \
            ("?" + query if query else "")
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps({"method": method, "path": parsed.path, "status":
                                response.status_code, "body": response.text}) + "\n")
        form = " " + urllib.parse.urlencode(data) if data else ""
        print(f"> {method} {target}{form}")
        print(f"< {response.status_code} {short(response.text)}")
        return response


def fail(step, detail):
    print(f"FAILED at {step}: {detail}", file=sys.stderr)
    sys.exit(1)


def expect(step, condition, detail=""):
    if not condition:
        fail(step, detail)


def expect_error(step, status, code, call):
    try:
        call()
    except TwilioRestException as e:
        expect(step, (e.status, e.code) == (status, code), f"got {e.status}/{e.code}: {e.msg}")
        return
    fail(step, "no TwilioRestException")


def last_code(number):
    req = urllib.request.Request(DIRECT + "/dev/outbox",
                                 headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req) as r:
        messages = json.load(r)["messages"]
    body = [m for m in messages if m["to"] == number][-1]["body"]
    tail = body.split("code is: ", 1)[1]
    return "".join(c for c in tail[:10] if c.isdigit())


def wrong(code):
    return "".join(str((int(c) + 1) % 10) for c in code)


client = Client(ACCOUNT, KEY, http_client=Recording())
client.verify.base_url = BASE
verify = client.verify.v2

print("# the default service")
service = verify.services(SERVICE).fetch()
expect("fetch service", service.sid == SERVICE and service.account_sid == ACCOUNT)

print("# create, resend, wrong check, right check, fetch")
v = verify.services(SERVICE).verifications.create(to=NUMBER, channel="sms")
expect("create", v.status == "pending" and v.sid.startswith("VE"), v.status)
again = verify.services(SERVICE).verifications.create(to=NUMBER, channel="sms")
expect("resend", again.sid == v.sid and len(again.send_code_attempts) == 2)
code = last_code(NUMBER)
check = verify.services(SERVICE).verification_checks.create(to=NUMBER, code=wrong(code))
expect("wrong check", check.status == "pending" and check.valid is False, check.status)
fetched = verify.services(SERVICE).verifications(v.sid).fetch()
expect("fetch", fetched.status == "pending")
check = verify.services(SERVICE).verification_checks.create(verification_sid=v.sid, code=code)
expect("right check", check.status == "approved" and check.valid is True, check.status)
expect_error("fetch after approval", 404, 20404,
             lambda: verify.services(SERVICE).verifications(v.sid).fetch())

print("# cancel")
v = verify.services(SERVICE).verifications.create(to=NUMBER, channel="sms")
canceled = verify.services(SERVICE).verifications(v.sid).update(status="canceled")
expect("cancel", canceled.status == "canceled")
expect_error("check after cancel", 404, 20404,
             lambda: verify.services(SERVICE).verification_checks.create(
                 to=NUMBER, code=last_code(NUMBER)))

print("# a refused parameter is the SDK's exception")
expect_error("bad To", 400, 60200,
             lambda: verify.services(SERVICE).verifications.create(to="12", channel="sms"))

print("# PSD2: amount and payee bound into the code")
pay = verify.services.create(friendly_name="Pay", psd2_enabled=True)
expect("psd2 service", pay.psd2_enabled is True)
v = verify.services(pay.sid).verifications.create(to=NUMBER, channel="sms", amount="€10",
                                                  payee="Acme")
expect("psd2 create", v.amount == "€10" and v.payee == "Acme")
code = last_code(NUMBER)
check = verify.services(pay.sid).verification_checks.create(to=NUMBER, code=code,
                                                             amount="€20", payee="Acme")
expect("psd2 other amount", check.status == "pending", check.status)
check = verify.services(pay.sid).verification_checks.create(to=NUMBER, code=code,
                                                             amount="€10", payee="Acme")
expect("psd2 right", check.status == "approved", check.status)

print("# custom code")
custom = verify.services.create(friendly_name="Custom", custom_code_enabled=True)
verify.services(custom.sid).verifications.create(to=NUMBER, channel="sms",
                                                  custom_code="8675309")
expect("custom code delivered", last_code(NUMBER) == "8675309")
check = verify.services(custom.sid).verification_checks.create(to=NUMBER, code="8675309")
expect("custom code check", check.status == "approved")

print("# services CRUD, listed two per page (the SDK follows next_page_url)")
extra = verify.services.create(friendly_name="Extra", code_length=8)
expect("create service", extra.code_length == 8)
listed = verify.services.list(page_size=2)
sids = [s.sid for s in listed]
expect("list", sids == [SERVICE, pay.sid, custom.sid, extra.sid], sids)
page = verify.services.page(page_size=2)
expect("first page", [s.sid for s in page] == [SERVICE, pay.sid]
       and page.next_page_url is not None)
second = page.next_page()
expect("second page", [s.sid for s in second] == [custom.sid, extra.sid])
updated = verify.services(extra.sid).update(friendly_name="Extra 2",
                                            do_not_share_warning_enabled=True)
expect("update service", updated.friendly_name == "Extra 2"
       and updated.do_not_share_warning_enabled is True)
expect("delete service", verify.services(extra.sid).delete() is True)
expect_error("fetch deleted service", 404, 20404, lambda: verify.services(extra.sid).fetch())

print("# the attempt log: list (three per page, followed by the SDK), filters, one, summary")
attempts = verify.verification_attempts.list(page_size=3)
expect("attempts", len(attempts) == 5, [a.sid for a in attempts])
expect("conversion", [a.conversion_status for a in attempts]
       == ["converted", "converted", "unconverted", "converted", "converted"],
       [a.conversion_status for a in attempts])
expect("attempt data", attempts[0].channel_data["to"] == NUMBER
       and attempts[0].service_sid == SERVICE)
pay_attempts = verify.verification_attempts.list(
    verify_service_sid=pay.sid, status="converted",
    date_created_after=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
expect("filtered attempts", len(pay_attempts) == 1 and pay_attempts[0].service_sid == pay.sid)
one = verify.verification_attempts(attempts[2].sid).fetch()
expect("fetch attempt", one.sid == attempts[2].sid and one.conversion_status == "unconverted")
summary = verify.verification_attempts_summary().fetch()
expect("summary", (summary.total_attempts, summary.total_converted, summary.total_unconverted,
                   summary.conversion_rate_percentage) == (5, 4, 1, "80"), summary)
summary = verify.verification_attempts_summary().fetch(destination_prefix="+1")
expect("summary by prefix", summary.total_attempts == 5)

print("# the safe list: add, fetch, remove")
CANADA = "+14165550123"
expect_error("canada before", 403, 60605,
             lambda: verify.services(SERVICE).verifications.create(to=CANADA, channel="sms"))
entry = verify.safelist.create(phone_number=CANADA)
expect("safe list add", entry.sid.startswith("GN") and entry.phone_number == CANADA)
expect("safe list fetch", verify.safelist(CANADA).fetch().sid == entry.sid)
v = verify.services(SERVICE).verifications.create(to=CANADA, channel="sms")
expect("canada listed", v.status == "pending")
expect("safe list remove", verify.safelist(CANADA).delete() is True)
expect_error("safe list fetch removed", 404, 20404, lambda: verify.safelist(CANADA).fetch())

print("# rate limits and buckets: CRUD, two per page, and the RateLimits parameter")
limits = verify.services(SERVICE).rate_limits
rk = limits.create(unique_name="end_user_ip_address", description="per end user")
expect("rate limit", rk.sid.startswith("RK") and rk.unique_name == "end_user_ip_address")
extra = limits.create(unique_name="phone_prefix")
listed = [r.sid for r in limits.list(page_size=1)]
expect("rate limits listed", listed == [rk.sid, extra.sid], listed)
buckets = verify.services(SERVICE).rate_limits(rk.sid).buckets
one = buckets.create(max=4, interval=60)
two = buckets.create(max=100, interval=86400)
three = buckets.create(max=10, interval=600)
listed = [b.sid for b in buckets.list(page_size=2)]
expect("buckets listed over two pages", listed == [one.sid, two.sid, three.sid], listed)
expect_error("same interval", 400, 60211, lambda: buckets.create(max=5, interval=60))
changed = buckets(three.sid).update(max=20)
expect("bucket update", changed.max == 20 and changed.interval == 600)
expect("bucket fetch", buckets(one.sid).fetch().max == 4)
expect("bucket delete", buckets(two.sid).delete() is True and buckets(three.sid).delete() is True)
expect("rate limit update", limits(extra.sid).update(description="x").description == "x")
expect("rate limit delete", limits(extra.sid).delete() is True)
for i in range(4):
    verify.services(SERVICE).verifications.create(
        to=f"+1415555010{i}", channel="sms",
        rate_limits={"end_user_ip_address": "203.0.113.7"})
expect_error("the fifth send from one end user", 429, 20429,
             lambda: verify.services(SERVICE).verifications.create(
                 to="+14155550105", channel="sms",
                 rate_limits={"end_user_ip_address": "203.0.113.7"}))

print("# done")
