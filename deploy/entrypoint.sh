#!/bin/sh
# As the fluent/fluentd image's entrypoint: arguments starting with '-' are fluentd flags; the
# config defaults to /fluentd/etc/$FLUENTD_CONF, and $FLUENTD_OPT adds flags.
set -e
DEFAULT=/etc/default/fluentd
if [ -r "$DEFAULT" ]; then
  set -o allexport
  . "$DEFAULT"
  set +o allexport
fi
if [ "${1#-}" != "$1" ]; then
  set -- fluentd "$@"
fi
if [ "$1" = "fluentd" ]; then
  shift
  case " $* " in
    *" -c "*|*" --config "*|*" --config="*) ;;
    *) set -- -c "/fluentd/etc/${FLUENTD_CONF:-fluent.conf}" "$@" ;;
  esac
  # shellcheck disable=SC2086
  exec /usr/bin/ferrentd "$@" $FLUENTD_OPT
fi
exec "$@"
