"""The CDS Hooks 2.0 service of decision support: discovery, order-sign/order-select checks of
anticoagulant drafts from prefetch, cards, feedback, and CDS client registration.

Routes live in ``routes.py`` (registered by ``clinicos.main``); client registration use cases in
``clients.py`` (the ``clinicos cds clients`` commands)."""
