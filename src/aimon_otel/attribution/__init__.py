"""Who a call is for: the tenant, user, feature and agent in context (``context``), user ids hashed and API
keys fingerprinted (``privacy``), and the guard against a metric label per user (``cardinality``)."""
