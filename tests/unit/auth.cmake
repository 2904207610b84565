# Unit tests of the collector's access records (auth.c) and the CA's enrollment and CRL paths.
vw_unit_test(test_auth vwserver)
