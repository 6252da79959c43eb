from mappings.diff import ruleset_diff

BASE = {
    "defaults": {"receivable_account": "1200"},
    "maps": {"SERVICE_LINE": {"HVAC": {"revenue_account": "4010"},
                              "Plumbing": {"revenue_account": "4040"}}},
    "routing": [{"id": 1, "conditions": {"line_kind": "part"}, "account": "4011"}],
}  # fmt: skip


def test_identical_rule_sets_differ_in_nothing_whatever_their_spelling():
    rows = {"Plumbing": {"revenue_account": "4040"}, "HVAC": {"revenue_account": "4010"}}
    respelled = {**BASE, "maps": {"SERVICE_LINE": rows}}
    assert ruleset_diff(BASE, respelled) == []


def test_each_change_is_one_readable_row():
    after = {
        "defaults": {"receivable_account": "1210", "revenue_account": "4090"},
        "maps": {"SERVICE_LINE": {"hvac": {"revenue_account": "4020"},
                                  "Elevators": {"revenue_account": "4060"}}},
        "routing": [{"id": 1, "conditions": {"line_kind": "part"}, "account": "4012"},
                    {"id": 2, "conditions": {"office": "Raleigh"}, "account": "4013"}],
    }  # fmt: skip
    rows = [(c.path, c.change, c.before, c.after) for c in ruleset_diff(BASE, after)]
    assert rows[:6] == [
        ("defaults.receivable_account", "changed", "1200", "1210"),
        ("defaults.revenue_account", "changed", "", "4090"),
        ("maps.SERVICE_LINE.Elevators", "added", None, {"revenue_account": "4060"}),
        ("maps.SERVICE_LINE.hvac.revenue_account", "changed", "4010", "4020"),
        ("maps.SERVICE_LINE.Plumbing", "removed", {"revenue_account": "4040"}, None),
        ("routing.1", "changed",
         {"id": 1, "conditions": {"line_kind": "part"}, "account": "4011", "priority": 0,
          "note": ""},
         {"id": 1, "conditions": {"line_kind": "part"}, "account": "4012", "priority": 0,
          "note": ""}),
    ]  # fmt: skip
    assert rows[6][:2] == ("routing.2", "added")
