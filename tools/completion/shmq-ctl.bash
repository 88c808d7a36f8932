# bash completion for shmq-ctl(1)                          -*- shell-script -*-
# SPDX-License-Identifier: MIT
#
# Completes verbs, each verb's options, option values (timestamp modes,
# groups, socket paths) and queue names, which it asks the instance for
# with "shmq-ctl list -q" (a read-only look; no daemon needed).

_shmq_ctl_queues()
{
    local inst=$1
    if [[ -n $inst ]]; then
        shmq-ctl --instance "$inst" list -q 2>/dev/null
    else
        shmq-ctl list -q 2>/dev/null
    fi
}

_shmq_ctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}

    local verbs="create delete purge list info send recv dlq ps"
    local with_value="-I --instance --socket --capacity --msg-max --mode
        --group --max-deliveries --dlq-capacity --lease-timeout --timestamps
        -t --timeout -n --count"

    # The verb, the instance, and the arguments after the verb so far.
    local verb= inst= i w nargs=0 skip=
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ -n $skip ]]; then
            [[ $skip == inst ]] && inst=$w
            skip=
            continue
        fi
        case $w in
        -I | --instance) skip=inst ;;
        --instance=*) inst=${w#--instance=} ;;
        --*=*) ;;
        -*)
            [[ " ${with_value//$'\n'/ } " == *" $w "* ]] && skip=value
            ;;
        *)
            if [[ -z $verb ]]; then
                verb=$w
            else
                ((nargs++))
            fi
            ;;
        esac
    done

    case $prev in
    --timestamps)
        COMPREPLY=($(compgen -W "precise coarse none" -- "$cur"))
        return
        ;;
    --group)
        COMPREPLY=($(compgen -g -- "$cur"))
        return
        ;;
    --socket)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    -I | --instance | --capacity | --msg-max | --mode | --max-deliveries | \
        --dlq-capacity | --lease-timeout | -t | --timeout | -n | --count)
        return
        ;;
    esac

    if [[ $cur == -* ]]; then
        local opts="--help --instance"
        case $verb in
        "") opts="$opts --version --socket --json" ;;
        create)
            opts="$opts --capacity --msg-max --mode --group --max-deliveries
                --dlq-capacity --lease-timeout --timestamps --quiet --socket"
            ;;
        delete) opts="$opts --quiet --socket" ;;
        purge) opts="$opts --json --quiet --socket" ;;
        list) opts="$opts --json --quiet" ;;
        info) opts="$opts --json" ;;
        send) opts="$opts --whole --timeout" ;;
        recv) opts="$opts --count --timeout --lease --json" ;;
        dlq) opts="$opts --count --json --quiet --socket" ;;
        ps) opts="$opts --json --socket" ;;
        esac
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi

    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
        return
    fi
    case $verb in
    create)
        ;;
    delete | purge | info | send | recv | dlq)
        if ((nargs == 0)); then
            COMPREPLY=($(compgen -W "$(_shmq_ctl_queues "$inst")" -- "$cur"))
        elif [[ $verb == dlq ]] && ((nargs == 1)); then
            COMPREPLY=($(compgen -W "list requeue drop" -- "$cur"))
        fi
        ;;
    esac
}

complete -F _shmq_ctl shmq-ctl
