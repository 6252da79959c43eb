"""Logging in: throttled after repeated failures; passwords can be changed."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_five_failed_logins_lock_the_username_out_even_with_the_right_password(client, connection):
    for _ in range(5):
        response = client.post(reverse("login"), {"username": "ar", "password": "wrong"})
        assert response.status_code == 200
    response = client.post(reverse("login"), {"username": "ar", "password": "crosswalk-demo"})
    assert response.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_correct_login_after_a_few_failures_works(client, connection):
    for _ in range(2):
        client.post(reverse("login"), {"username": "ar", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "ar", "password": "crosswalk-demo"})
    assert response.status_code == 302


def test_a_user_can_change_their_password(client, connection):
    client.login(username="finance", password="crosswalk-demo")
    response = client.post(reverse("password_change"), {
        "old_password": "crosswalk-demo", "new_password1": "ledger-tie-out-2026",
        "new_password2": "ledger-tie-out-2026",
    })  # fmt: skip
    assert response.status_code == 302
    client.logout()
    assert client.login(username="finance", password="ledger-tie-out-2026")
