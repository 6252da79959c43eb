import io, time, tracemalloc
from datetime import date
from decimal import Decimal
import pytest
from django.db import connection as dbc
from django.test.utils import CaptureQueriesContext
from syncengine.erps.sandbox.models import *
from syncengine.erps.sandbox.export import write_ledger
from syncengine.models import Connection

pytestmark = pytest.mark.django_db

def test_bench():
    c = Connection.objects.create(name="B", slug="b")
    a = LedgerAccount.objects.create(connection=c, number="1", name="A", type="ASSET")
    b = LedgerAccount.objects.create(connection=c, number="4", name="B", type="INCOME")
    cu = LedgerCustomer.objects.create(connection=c, number="C1", name="X", source_ref="1")
    N = 100_000
    es = JournalEntry.objects.bulk_create(JournalEntry(connection=c, number=f"JE-{i:07d}", posting_date=date(2024,1,1+i%28), memo="m") for i in range(N))
    JournalLine.objects.bulk_create((JournalLine(entry=e, account=acc, debit=d, credit=cr) for e in es for acc,d,cr in ((a,Decimal("1.10"),0),(b,0,Decimal("1.10")))), batch_size=5000)
    JournalEntry.objects.filter(connection=c).update(state="POSTED")
    LedgerInvoice.objects.bulk_create((LedgerInvoice(connection=c, number=f"SI-{i}", external_document_number=f"x{i}", customer=cu, posting_date=e.posting_date, currency="USD", amount=Decimal("1.10"), journal_entry=e) for i,e in enumerate(es[:50000])), batch_size=5000)
    for fmt in ("json", "beancount"):
        out = io.StringIO()
        class Null:
            n=0
            def write(self, t): self.n += len(t)
        s = Null()
        tracemalloc.start()
        t = time.time()
        with CaptureQueriesContext(dbc) as q:
            write_ledger(connection=c, fmt=fmt, stream=s)
        cur, peak = tracemalloc.get_traced_memory(); tracemalloc.stop()
        print(fmt, round(time.time()-t,1), "s", len(q), "queries", s.n, "chars", peak//1_000_000, "MB peak")
