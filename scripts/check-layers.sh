#!/usr/bin/env bash
# The import rule of docs/architecture.md, checked on the sources:
#   core  imports only core                 (pure Rust)
#   pg    imports only core and pg          (plumbing)
#   gucs  imports only core
#   state imports only core, pg, gucs, state
#   api   imports anything below it and api
# and no module imports another in a circle (tsort finds loops).
set -euo pipefail
cd "$(dirname "$0")/../src"
declare -A allowed=([core]="core" [pg]="core pg" [gucs]="core" [state]="core pg gucs state" [api]="core pg gucs state api")
fail=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in core/*.rs pg/*.rs state/*.rs api/*.rs gucs.rs; do
    case "$f" in gucs.rs) layer=gucs; self=gucs ;; *) layer=${f%%/*}; self=${f%.rs}; self=${self%/mod} ;; esac
    # crate::a::b and crate::a::{b, c} references, as layer/module pairs
    deps=$( { { grep -oE 'crate::[a-z_]+::[a-z_]+' "$f" || true; } | sed -E 's/crate::([a-z_]+)::([a-z_]+)/\1\/\2/'
              { grep -oE 'crate::[a-z_]+::\{[^}]*\}' "$f" || true; } | sed -E 's/crate::([a-z_]+)::\{([^}]*)\}/\1 \2/' |
                  while read -r top rest; do for m in ${rest//,/ }; do echo "$top/${m%%::*}"; done; done
              { grep -oE 'crate::gucs' "$f" || true; } | sed 's/crate::gucs/gucs/' ; } | sort -u)
    for d in $deps; do
        top=${d%%/*}
        case " ${allowed[$layer]} " in *" $top "*) ;; *) echo "layer rule: $f ($layer) imports $d"; fail=1 ;; esac
        [ "$d" = "gucs" ] && d=gucs
        # modules of the same layer: an edge for the cycle check
        [ "$d" != "$self" ] && [ "${d%%/*}" = "$layer" ] && echo "$self $d" >> "$edges"
    done
done
if ! tsort "$edges" > /dev/null 2>"$edges.err"; then
    echo "import cycle:"; cat "$edges.err"; fail=1
fi
rm -f "$edges.err"
[ "$fail" = 0 ] && echo "layers: ok ($(wc -l < "$edges") same-layer imports, no cycle)"
exit "$fail"
