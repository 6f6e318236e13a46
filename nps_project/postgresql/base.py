"""Django's PostgreSQL backend, for statements bound and prepared on the server.

With ``server_side_binding`` (settings: ``DATABASE_PREPARED_STATEMENTS``) every value travels as
a parameter, and PostgreSQL takes at most 65,535 parameters a statement; Django's own backend
assumes no limit, so a ``bulk_create`` or a cascade delete of a 100,000-invitation wave would be
one statement too many parameters long. Here the batches Django splits by
``bulk_batch_size`` (``bulk_create``, the deletion collector) stay under the limit.
"""

from django.db.backends.postgresql import base, features, operations

MAX_QUERY_PARAMS = 65_535


class DatabaseFeatures(features.DatabaseFeatures):
    max_query_params = MAX_QUERY_PARAMS


class DatabaseOperations(operations.DatabaseOperations):
    def bulk_batch_size(self, fields, objs):
        """Rows a statement, so that rows x fields parameters fit in one statement."""
        per_row = max(len(list(fields)), 1)
        return max(1, min(len(objs), MAX_QUERY_PARAMS // per_row))


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
