"""The real parts the tests talk to, one module each, all listening on 127.0.0.1 only.

Each module holds its server classes and the fixtures that start them; conftest.py registers
the modules as plugins (``pytest_plugins``), so a test asks for a fixture by name and never
imports a module from here for it. Constants of a part (the Kerberos user, the Google service
account, ...) are imported from its module.

* ``loopback``: the threaded HTTP server the others are built on;
* ``sts``: moto's STS behind a proxy that counts, delays and fails requests (``sts``);
* ``kerberos``: an MIT KDC and an IdP page behind SPNEGO (``kdc``, ``idp``, ``krb_env``);
* ``google``: a GCE metadata server and Google's OAuth token endpoint (``google_issuer``,
  ``gce_metadata``, ``google_token_endpoint``);
* ``blackhole``: addresses that never answer (``blackhole``);
* ``federation``: the federation endpoint of examples/factory (``federation_endpoint``).

A part that lives for the session is started by a fixture with a leading underscore
(``_sts_proxy``); the fixture of the same name without it hands it to one test, reset before
and after, so that no test sees another's counters or faults.
"""
