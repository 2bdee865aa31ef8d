# Runs wstest with every listening socket bound to 127.0.0.1.
#
# wstest's fuzzingserver listens on all interfaces and offers no option to change that; this
# wrapper (run with wstest's own Python 2.7) narrows Twisted's listenTCP to the loopback
# interface before handing over to wstest's normal entry point.
import sys

from twisted.internet import reactor

_listen_tcp = reactor.listenTCP


def _listen_tcp_loopback(port, factory, backlog=50, interface=''):
    return _listen_tcp(port, factory, backlog, interface or '127.0.0.1')


reactor.listenTCP = _listen_tcp_loopback

from autobahntestsuite.wstest import run  # noqa: E402 (must follow the patch)

sys.argv[0] = 'wstest'
sys.exit(run())
