"""The call path: an SDK method is wrapped (``instrumentor``, ``providers``), the call becomes an
``Invocation`` (``calls``, ``streams``, ``usage``), and the ``pipeline`` turns it into a priced span, metrics
and the sinks' records (budgets, billing) when it ends; ``processor`` prices spans other instrumentations
make, joined to ours through ``native_spans``.

Nothing is imported here: ``pricing`` and ``budgets`` read ``usage`` and ``invocation`` without loading
the instrumentor.
"""
