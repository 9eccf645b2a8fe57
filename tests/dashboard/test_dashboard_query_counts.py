"""Each page runs a fixed number of queries, whether there are 10 events or 1,000."""

import pytest

from events.models import Action, Brand

# Exact counts on PostgreSQL, session and user lookups and the alert banner's one query included.
# The action and deliveries pages also read the user's permissions (user and group: two queries)
# to offer replaying.
# The timeline pages look up alert badges only when the page has rows (so the filtered one runs 6
# queries on 10 events, 7 on 1,000).
# The overview's and brands list's first view of the day also counts the period's closed days
# for both pages and stores them: the lock (not on SQLite), a second look, five counts, the
# insert, the clean-up, and two savepoints in tests. Later views read them (below).
# The overview and a brand's timeline show the money by status: its totals are counted on the first
# view too (a look, the lock (not on SQLite), a second look, five deletes, four INSERT … SELECT
# counts, the zone's row, two savepoints in tests), then read in five queries (the look, the totals
# now, the period's days from TrackedTotal, today's lockings, the period's today from the reports).
PAGES = [
    ("overview", lambda b, a: "/", 41),
    ("overview 30 days", lambda b, a: "/?period=30d", 41),
    ("brands", lambda b, a: "/brands/?sort=delay_p95", 20),
    ("brand timeline", lambda b, a: f"/brands/{b.campaign_id}/", 26),
    (
        "filtered timeline",
        lambda b, a: (
            f"/brands/{b.campaign_id}/?kind=reversed&state=reversed&late=on&tracker=7&sub_id=sub0&date_from=2026-11-16"
        ),
        26,
    ),
    ("action detail", lambda b, a: f"/actions/{a.action_id}/", 8),
    ("deliveries", lambda b, a: "/deliveries/?outcome=applied", 6),
    ("refused attempts", lambda b, a: "/deliveries/refused/", 5),
]


@pytest.mark.parametrize("size", [10, 1000])
@pytest.mark.parametrize(("name", "url", "limit"), PAGES, ids=[p[0] for p in PAGES])
def test_page_query_count_does_not_grow_with_the_data(
    staff_client, make_history, django_assert_max_num_queries, size, name, url, limit
):
    make_history(size)
    brand = Brand.objects.get(campaign_id="1001")
    action = Action.objects.filter(brand=brand).order_by("action_id").first()
    with django_assert_max_num_queries(limit):
        response = staff_client.get(url(brand, action))
    assert response.status_code == 200


@pytest.mark.parametrize("size", [10, 1000])
def test_deep_timeline_page_costs_what_the_first_costs(staff_client, make_history, django_assert_max_num_queries, size):
    make_history(size, brands=1)
    response = staff_client.get("/brands/1001/")
    cursor = response.context["page"].older
    pages = 1
    while cursor and pages < 5:
        with django_assert_max_num_queries(12):  # as the "brand timeline" page above, its totals counted
            response = staff_client.get(f"/brands/1001/?before={cursor}")
        cursor = response.context["page"].older
        pages += 1
    assert pages == (5 if size == 1000 else 1)


@pytest.mark.parametrize("size", [10, 1000])
def test_csv_export_streams_with_a_fixed_number_of_queries(
    staff_client, make_history, django_assert_max_num_queries, size
):
    make_history(size, brands=1)
    with django_assert_max_num_queries(4):
        response = staff_client.get("/brands/1001/?format=csv")
        lines = b"".join(response.streaming_content).decode("utf-8-sig").strip().splitlines()
    assert len(lines) == size + 1


@pytest.mark.parametrize("size", [10, 1000])
@pytest.mark.parametrize(
    ("url", "limit"),
    [
        # Session, user, the stored days, three counts of the rest (events, delays, deliveries),
        # last postback, the backlog, refused attempts, actions reversed by now, alert banner; the
        # money by status in five.
        ("/?period=7d", 16),
        ("/?period=30d", 16),
        # Session, user, brands, the stored days, two counts of the rest (events, delays), actions
        # reversed by now per brand, open alerts per brand, alert banner.
        ("/brands/?period=7d", 9),
        ("/brands/?period=30d", 9),
    ],
)
def test_overview_and_brands_read_their_closed_days_once_counted(
    staff_client, make_history, django_assert_max_num_queries, size, url, limit
):
    make_history(size)
    staff_client.get(url)  # counts and stores the closed days
    with django_assert_max_num_queries(limit):
        response = staff_client.get(url)
    assert response.status_code == 200
