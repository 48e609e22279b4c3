# Shared by the recipes: messages, --help from the script's header, option parsing.
# Source it after setting the defaults and `recipe_name`:
#   . "$recipe/../lib/common.sh"
#   parse_options "stage stop_stage exp" "$@"   # sets $stage, $stop_stage, $exp; key=value -> overrides[]

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "$recipe_name: error: $*" >&2; exit 1; }
log() { echo "$(date '+%H:%M:%S') $*"; }

# parse_options "NAME ..." ARGS...: --name value and --name=value (dashes or underscores) set
# the variable NAME when it is listed; trailing key=value arguments are config overrides.
parse_options() {
  local allowed=" $1 " name
  shift
  overrides=()
  while [ $# -gt 0 ]; do
    case $1 in
      -h|--help) usage; exit 0 ;;
      --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
      --*)
        [ $# -ge 2 ] || die "option $1 needs a value"
        name=${1#--}; name=${name//-/_}
        [[ $allowed == *" $name "* ]] || die "unknown option $1 (see --help)"
        printf -v "$name" '%s' "$2"
        shift 2 ;;
      *=*) overrides+=("$1"); shift ;;
      *) die "unexpected argument '$1' (options are --name value; config overrides key=value)" ;;
    esac
  done
}

# speakervlad_python: the interpreter of the installed speakervlad command (runs local/*.py helpers).
speakervlad_python() {
  local python
  python=$(sed -n '1s/^#!//p' "$(command -v speakervlad)")
  [ -x "$python" ] || python=python3
  echo "$python"
}
