"""The tenant's datastore as the HTTP runner's templates see it: `{{ datastore.api_base }}`.

The HTTP runner renders its templates in the worker process, not in an
action, so it reads the datastore itself. It does so in a tenant
transaction (row-level security admits only that tenant's items, on top of
`get_value`'s own tenant filter), only when a template mentions
`datastore`, and only for the keys the templates actually read
(`DatastoreView` is lazy). The transaction ends once the templates are
rendered: no database connection is held while the request is in flight.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from chalicelib.datastore import DatastoreView
from chalicelib.db.pool import tenant_tx


@contextmanager
def datastore_view(tenant_id: int) -> Iterator[Mapping[str, Any]]:
    """`datastore.<key>` for one tenant, read (and decrypted) on first use, valid inside the block only."""
    with tenant_tx(tenant_id) as cur:
        yield DatastoreView(cur, tenant_id)
