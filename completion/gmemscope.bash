# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
# bash completion for gmemd, gmemtop, gmemtrace, gmem-load and gmem-policy.
#
# Verbs and options are read from the program's own help when completing (PROG help,
# PROG VERB --help), so they can never disagree with the program being completed. Installed
# once, with one name per program pointing here, for bash-completion's loader.

# The verbs in the VERBS: list of "PROG help".
_gmemscope_verbs()
{
	"$1" help 2>/dev/null | awk '/^VERBS:/ { on = 1; next } on && !NF { exit } on { print $1 }'
}

# The long options in a program's or a verb's --help.
_gmemscope_longopts()
{
	"$@" --help 2>/dev/null | grep -oE -- '(^|[ ,])--[A-Za-z][A-Za-z0-9.-]*=?' |
		sed 's/^[ ,]*//' | sort -u |
		awk '{ o[NR] = $0; v[$0] = 1 } END { for (i = 1; i <= NR; i++)
			if (!(o[i] "=" in v)) print o[i] }'  # --x= (takes a value) over a bare --x
}

_gmemscope()
{
	local cur prev prog verb="" i opts
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	prog=${COMP_WORDS[0]}
	COMPREPLY=()

	case ${prog##*/} in
	gmemtrace|gmem-policy)
		for ((i = 1; i < COMP_CWORD; i++)); do
			case ${COMP_WORDS[i]} in -*) ;; *) verb=${COMP_WORDS[i]}; break ;; esac
		done
		if [[ -z $verb && $cur != -* ]]; then
			COMPREPLY=($(compgen -W "$(_gmemscope_verbs "$prog")" -- "$cur"))
			return
		fi
		if [[ $verb == help ]]; then
			COMPREPLY=($(compgen -W "$(_gmemscope_verbs "$prog")" -- "$cur"))
			return
		fi
		;;
	esac

	# Values of the options that take one word from a fixed set.
	case $prev in
	--format)
		if [[ ${prog##*/} == gmemtop ]]; then
			COMPREPLY=($(compgen -W "text csv json" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "perfetto csv jsonl" -- "$cur"))
		fi
		return ;;
	--scan) COMPREPLY=($(compgen -W "iter procfs" -- "$cur")); return ;;
	--vm-type) COMPREPLY=($(compgen -W "default sw-protected" -- "$cur")); return ;;
	--policy|-p)
		# gmemd -p is --probe, gmemtop -p --pid
		[[ $prev == -p && ${prog##*/} =~ ^(gmemd|gmemtop)$ ]] && return
		local dir=${prog%/*}
		[[ $dir == "$prog" ]] && dir=""
		COMPREPLY=($(compgen -W "$("${dir:+$dir/}gmem-policy" list 2>/dev/null |
			awk 'NR > 1 { print $1 }')" -- "$cur"))
		return ;;
	esac

	if [[ $cur == -* ]]; then
		opts=$(_gmemscope_longopts "$prog" ${verb:+"$verb"})
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		# an option that wants a value gets no space after its =
		[[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
	fi
	# otherwise nothing: bash completes file names (complete -o default)
}

complete -o bashdefault -o default -F _gmemscope gmemd gmemtop gmemtrace gmem-load gmem-policy
