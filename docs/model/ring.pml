/*
 * shmq ring slot protocol: a Promela model for spin.
 *
 * What is modelled (libshmq/src/ring.c, wait.c, repair.c):
 *   - a ring of NSLOT slots, each with one atomic state word
 *     (lap, phase, deliveries, owner), updated only by loads, stores
 *     and CAS;
 *   - head and tail as monotone position hints that anyone may help;
 *   - producers: claim FREE -> WRITING(me), help tail, write payload,
 *     publish READY (or abort to SKIP), post not-empty;
 *   - consumers: re-lease RETRY slots first (through retry_count), else
 *     scan from head: lease READY, free SKIP, pass LEASED/RETRY, stop at
 *     WRITING/FREE (empty); then ack (-> FREE(lap+1)) or nack (-> RETRY);
 *     past MAXD deliveries a message is dead-lettered;
 *   - eventcounts (not-empty, not-full): futex word, bit 0 = waiters,
 *     bits 1.. = epoch; futex_wait is an atomic compare-and-block,
 *     futex_wake wakes every sleeper on the word;
 *   - crashes: any producer or consumer may stop forever between any two
 *     steps (at most MAXCRASH in all, and never the last live consumer);
 *   - the repairer (shmqd calling repair): after a death, WRITING(dead)
 *     -> SKIP, LEASED(dead) -> RETRY, then wakes every waiter; it may
 *     itself be restarted in the middle of a pass and run it again.
 *
 * Properties (see README.md): assertions for unique ownership, ack-once,
 * bounded duplicates, payload integrity and the retry_count invariant;
 * end-state checks (no invalid end state) for no stuck slot and no lost
 * wakeup; a non-progress check (-DNP) for livelock.
 *
 * Switches (-D...):
 *   NSLOT NPROD NMSGP NCONS MAXD MAXCRASH MAXABORT MAXNACK MAXRESTART
 *                      model size (defaults below)
 *   BROKEN_EC=1        waiter sleeps right after setting the waiters bit,
 *                      without re-checking the ring          (must fail)
 *   BROKEN_EC=2        poster reads the eventcount word before its
 *                      publishing store is visible (no fence)  (must fail)
 *   RC_AFTER           retry_count++ after the CAS that makes a slot
 *                      RETRY instead of before it              (must fail)
 *   TAIL_RELOAD        producer that finds a slot a lap ahead of its
 *                      position re-reads tail instead of passing the
 *                      position                                (must fail)
 *   ABORT_NO_POST      producer abort (WRITING -> SKIP) does not post
 *                      not-empty                               (must fail)
 *   REPAIR_COND_WAKE   repair posts like an ordinary poster (wakes only if
 *                      the waiters bit is set) instead of always waking
 *                                                              (must fail)
 */

#ifndef NSLOT
#define NSLOT 2
#endif
#ifndef NPROD
#define NPROD 2
#endif
#ifndef NMSGP
#define NMSGP 2         /* messages per producer */
#endif
#ifndef NCONS
#define NCONS 2
#endif
#ifndef MAXD
#define MAXD 2          /* max_deliveries */
#endif
#ifndef MAXCRASH
#define MAXCRASH 1      /* producer/consumer crashes in all */
#endif
#ifndef MAXABORT
#define MAXABORT 1      /* producer aborts in all */
#endif
#ifndef MAXNACK
#define MAXNACK 1       /* consumer nacks in all */
#endif
#ifndef MAXRESTART
#define MAXRESTART 1    /* repairer restarts in all */
#endif

#if NSLOT != 2
#error "the invariants (NRETRY, Monitor) are written for NSLOT == 2"
#endif

#define NMSG  (NPROD * NMSGP)
#define NPROC (NPROD + NCONS)

/* phases */
#define FREE    0       /* so that the initial all-zero state is FREE(lap 0) */
#define WRITING 1
#define READY   2
#define LEASED  3
#define RETRY   4
#define SKIP    5
#define NONE    15      /* owner: nobody */

/* eventcounts */
#define NE 0            /* not-empty */
#define NF 1            /* not-full */

/* ghost message states */
#define M_UNSENT  0
#define M_WRITING 1     /* claimed, not published */
#define M_READY   2     /* published: READY, LEASED or RETRY */
#define M_SKIPPED 3     /* never published (abort, or producer died) */
#define M_ACKED   4
#define M_DEAD    5     /* dead-lettered */

/* ---- shared memory ---------------------------------------------------- */

/* slot state word, one atomic unit: lap | phase | deliveries | owner */
byte slap[NSLOT];
byte sph[NSLOT];
byte sdlv[NSLOT];
byte sown[NSLOT];
byte sdata[NSLOT];      /* payload: message id + 1 (0: nothing written) */

byte tail;              /* hints */
byte head;
short retry_count;      /* slots in RETRY (an upper bound, see README) */
byte ec[2];             /* eventcount words: bit 0 waiters, bits 1.. epoch */

/* ---- ghost state (not in shared memory) ------------------------------- */

byte slp[NPROC];        /* futex: 0 awake, 1 + word index while blocked */
byte smsg[NSLOT];       /* which message the slot carries */
byte held[NSLOT];       /* live processes that believe they own the slot */
byte hold[NPROC];       /* slot + 1 that a process believes it owns */
byte busy;              /* slots not FREE */
byte mst[NMSG];         /* M_* */
byte delivered[NMSG];   /* leases returned to the application */
byte dlqc[NMSG];        /* copies made into the dead-letter ring */
byte nacks[NMSG];
byte diedholding[NMSG];  /* lessees that died holding the message */
bit  kill[NPROC];       /* crash requested: the process stops now */
bit  dead[NPROC];       /* crashed (what the supervisor learns) */
bit  fin[NPROC];        /* producer done / consumer exited */
byte ndead;             /* crashes that happened */
byte crashes;           /* crashes requested */
byte calive = NCONS;    /* consumers not killed */
byte pfin;              /* producers done or dead */
byte aborts;
byte nnack;
byte restarts;
bit  rep[NPROC];        /* repair of a dead process taken up */
byte nrep;

/* every message is accounted for and every slot is FREE: the queue is
 * drained and nothing more can come; lets consumers exit */
#define FINISHED (pfin == NPROD && busy == 0)

#define NRETRY ((sph[0] == RETRY -> 1 : 0) + (sph[1] == RETRY -> 1 : 0))

/* ---- primitives -------------------------------------------------------- */

/* CAS(hint, pos, pos + 1): help a hint past a claimed position */
inline help(h, p)
{
    atomic { if :: h == p -> h = p + 1 :: else -> skip fi }
}

/* futex_wake(word, INT_MAX) */
inline futex_wake(w)
{
    d_step {
        j = 0;
        do
        :: j < NPROC -> if :: slp[j] == w + 1 -> slp[j] = 0 :: else -> skip fi; j++
        :: else -> j = 0; break
        od
    }
}

/* ec_post: after the state change is published, full fence; if someone
 * waits, clear the bit and bump the epoch with one CAS; the CAS winner
 * wakes everybody (at most one wake per sleep). */
inline ec_post_check(w)
{
    if
    :: (pv & 1) ->
        atomic {
            if
            :: ec[w] == pv -> assert(pv < 250); ec[w] = pv + 1; pv = 1
            :: else -> pv = 0
            fi
        }
        if :: pv == 1 -> futex_wake(w) :: else -> skip fi
    :: else -> skip
    fi;
    pv = 0
}

inline ec_post(w)
{
    pv = ec[w];
    ec_post_check(w)
}

/* ec_prepare: v = load(word); if !(v & 1) v = fetch_or(word, 1) | 1 */
inline ec_prepare(w)
{
    v = ec[w];
    if
    :: !(v & 1) -> atomic { ec[w] = ec[w] | 1; v = ec[w] }
    :: else -> skip
    fi
}

/* futex_wait(word, v): sleeps only if word == v, atomically; returns when
 * woken.  Consumers also leave when the run is FINISHED (the harness
 * closing the queue); that escape is never enabled while any work is left. */
inline futex_wait(w, extra)
{
    atomic {
        if
        :: ec[w] == v -> slp[me] = w + 1
        :: else -> skip
        fi
    }
    (slp[me] == 0 || extra);
    slp[me] = 0; v = 0
}

/* ---- producer ------------------------------------------------------------ */

active [NPROD] proctype Producer()
{
    byte me = _pid;
    byte k, m, pos, i, wl, wp, v, pv, j;
    bit armed;

    {
    assert(me < NPROD);
top:
        if
        :: k == NMSGP -> goto done
        :: else -> skip
        fi;
        m = me * NMSGP + k;
reload:
        pos = tail;
look:
        assert(pos <= NMSG);
        atomic { i = pos % NSLOT; wl = slap[i]; wp = sph[i] }
        if
        :: wl == pos / NSLOT && wp == FREE ->
            /* claim: CAS FREE(lap) -> WRITING(lap, me) */
            atomic {
                if
                :: slap[i] == wl && sph[i] == FREE ->
                    sph[i] = WRITING; sown[i] = me; sdlv[i] = 0;
                    assert(held[i] == 0);
                    held[i] = 1; hold[me] = i + 1;
                    smsg[i] = m; assert(mst[m] == M_UNSENT); mst[m] = M_WRITING;
                    busy++; wl = 0; wp = 0
                :: else -> wl = 0; wp = 0; goto look
                fi
            }
        :: wl == pos / NSLOT && wp != FREE ->
            /* claimed by another: help tail, next position */
            wl = 0; wp = 0;
            help(tail, pos); pos++; goto look
        :: wl > pos / NSLOT ->
            wl = 0; wp = 0;
#ifdef TAIL_RELOAD
            goto reload
#else
            /* position already used and freed: pass it */
            help(tail, pos); pos++; goto look
#endif
        :: wl < pos / NSLOT ->
            /* the slot still holds the previous lap: full */
            wl = 0; wp = 0;
            if
            :: !armed -> ec_prepare(NF); armed = 1; pos = 0; goto reload   /* re-check */
            :: else -> futex_wait(NF, false); armed = 0; pos = 0; goto reload
            fi
        fi;

        /* claimed slot i at pos */
        armed = 0; v = 0;
        help(tail, pos);
        pos = 0;
        sdata[i] = m + 1;                       /* write header and payload */
#if BROKEN_EC == 2
        pv = ec[NE];                            /* load hoisted above the store */
#endif
        if
        :: aborts < MAXABORT ->
            /* abort: WRITING(me) -> SKIP(lap) */
            atomic {
                assert(sph[i] == WRITING && sown[i] == me);
                sph[i] = SKIP; sown[i] = NONE;
                held[i] = 0; hold[me] = 0; aborts++;
                mst[m] = M_SKIPPED
            }
#ifdef ABORT_NO_POST
            pv = 0;
            goto sent;
#endif
        :: true ->
            /* publish: store READY(lap, 0, NONE) */
            atomic {
                assert(sph[i] == WRITING && sown[i] == me);
                sph[i] = READY; sown[i] = NONE;
                held[i] = 0; hold[me] = 0;
                mst[m] = M_READY
            }
        fi;
#if BROKEN_EC == 2
        ec_post_check(NE);
#else
        ec_post(NE);
#endif
sent:
        i = 0;
        k++;
        goto top;
done:
        atomic { fin[me] = 1; pfin++ }
    } unless {
        kill[me] ->
        atomic {
            dead[me] = 1; ndead++; pfin++;
            slp[me] = 0;
            if
            :: hold[me] -> held[hold[me] - 1] = 0; hold[me] = 0
            :: else -> skip
            fi
        }
    }
}

/* ---- consumer ------------------------------------------------------------ */

active [NCONS] proctype Consumer()
{
    byte me = _pid;
    byte pos, i, wl, wp, wd, m, v, pv, j;
    bit armed;

    {
    assert(me >= NPROD && me < NPROC);
top:
        if
        :: FINISHED -> goto done
        :: else -> skip
        fi;
attempt:
        /* 1. redeliveries first */
        if
        :: retry_count > 0 ->
            i = 0;
            do
            :: i < NSLOT ->
                atomic { wl = slap[i]; wp = sph[i]; wd = sdlv[i] }
                if
                :: wp == RETRY ->
                    /* CAS RETRY(lap, d, NONE) -> LEASED(lap, d + 1, me) */
                    atomic {
                        if
                        :: slap[i] == wl && sph[i] == RETRY && sdlv[i] == wd && sown[i] == NONE ->
                            sph[i] = LEASED; sdlv[i] = wd + 1; sown[i] = me;
                            assert(held[i] == 0);
                            held[i] = 1; hold[me] = i + 1;
                            m = smsg[i];
                            goto got_retry
                        :: else -> skip
                        fi
                    }
                :: else -> skip
                fi;
                wl = 0; wp = 0; wd = 0;
                i++
            :: else -> i = 0; break
            od
        :: else -> skip
        fi;

        /* 2. new messages from head */
        pos = head;
look:
        assert(pos <= NMSG);
        atomic { i = pos % NSLOT; wl = slap[i]; wp = sph[i] }
        if
        :: wl == pos / NSLOT && wp == READY ->
            /* lease: CAS READY(lap) -> LEASED(lap, 1, me) */
            atomic {
                if
                :: slap[i] == wl && sph[i] == READY ->
                    sph[i] = LEASED; sdlv[i] = 1; sown[i] = me;
                    assert(held[i] == 0);
                    held[i] = 1; hold[me] = i + 1;
                    m = smsg[i]; wl = 0; wp = 0
                :: else -> wl = 0; wp = 0; goto look
                fi
            }
            help(head, pos);
            pos = 0;
            goto deliver
        :: wl == pos / NSLOT && wp == SKIP ->
            /* CAS SKIP(lap) -> FREE(lap + 1) */
            atomic {
                if
                :: slap[i] == wl && sph[i] == SKIP ->
                    slap[i] = wl + 1; sph[i] = FREE; busy--;
                    sdata[i] = 0; smsg[i] = 0; wl = 0; wp = 0
                :: else -> wl = 0; wp = 0; goto look
                fi
            }
            help(head, pos);
            ec_post(NF);
            pos++; goto look
        :: wl == pos / NSLOT && (wp == LEASED || wp == RETRY) ->
            wl = 0; wp = 0;
            help(head, pos); pos++; goto look
        :: wl > pos / NSLOT ->
            /* position already used and freed: pass it */
            wl = 0; wp = 0;
            help(head, pos); pos++; goto look
        :: (wl == pos / NSLOT && (wp == WRITING || wp == FREE)) || wl < pos / NSLOT ->
            /* empty */
            wl = 0; wp = 0; pos = 0;
#if BROKEN_EC == 1
            ec_prepare(NE);
            futex_wait(NE, FINISHED);
            goto top
#else
            if
            :: !armed -> ec_prepare(NE); armed = 1; goto attempt   /* re-check */
            :: else -> futex_wait(NE, FINISHED); armed = 0; goto top
            fi
#endif
        fi;

got_retry:
        wl = 0; wp = 0;
        /* retry_count--: after the CAS, so it never undercounts */
#ifndef RC_AFTER
        assert(retry_count > 0);
#endif
        retry_count--;
        if
        :: wd + 1 > MAXD ->
            wd = 0;
            /* dead-letter: copy to the dead-letter ring, then free */
            atomic {
                assert(sdata[i] == m + 1);
                dlqc[m]++;
                assert(dlqc[m] <= 1 + diedholding[m])
            }
            atomic {
                wl = slap[i];
                assert(sph[i] == LEASED && sown[i] == me);   /* CAS cannot fail */
                slap[i] = wl + 1; sph[i] = FREE; sown[i] = NONE; sdlv[i] = 0; busy--;
                held[i] = 0; hold[me] = 0;
                assert(mst[m] == M_READY); mst[m] = M_DEAD;
                sdata[i] = 0; smsg[i] = 0; wl = 0
            }
            ec_post(NF);
            armed = 0; i = 0; m = 0;
            goto top
        :: else -> wd = 0
        fi;

deliver:
        /* read header and payload, hand the message over */
        atomic {
            assert(sdata[i] == m + 1);
            delivered[m]++;
            assert(delivered[m] <= 1 + diedholding[m] + nacks[m])
        }
        armed = 0;
        if
        :: true ->
            /* ack: CAS LEASED(lap, d, me) -> FREE(lap + 1) */
            atomic {
                assert(sph[i] == LEASED && sown[i] == me);   /* never stale here */
                slap[i] = slap[i] + 1; sph[i] = FREE; sown[i] = NONE; sdlv[i] = 0; busy--;
                held[i] = 0; hold[me] = 0;
                assert(mst[m] == M_READY); mst[m] = M_ACKED;
                sdata[i] = 0; smsg[i] = 0
            }
            ec_post(NF)
        :: nnack < MAXNACK ->
            /* nack: LEASED(lap, d, me) -> RETRY(lap, d, NONE) */
#ifndef RC_AFTER
            retry_count++;
#endif
            atomic {
                assert(sph[i] == LEASED && sown[i] == me);
                sph[i] = RETRY; sown[i] = NONE;
                held[i] = 0; hold[me] = 0;
                nacks[m]++; nnack++
            }
#ifdef RC_AFTER
            retry_count++;
#endif
            ec_post(NE)
        fi;
        i = 0; m = 0;
        goto top;
done:
        /* drained: every message acked, dead-lettered or never published */
        atomic {
            j = 0;
            do
            :: j < NMSG ->
                assert(mst[j] == M_ACKED || mst[j] == M_DEAD || mst[j] == M_SKIPPED ||
                       (mst[j] == M_UNSENT && dead[j / NMSGP]));
                j++
            :: else -> j = 0; break
            od;
            fin[me] = 1
        }
    } unless {
        kill[me] ->
        atomic {
            dead[me] = 1; ndead++;
            slp[me] = 0;
            if
            :: hold[me] ->
                diedholding[smsg[hold[me] - 1]]++;
                held[hold[me] - 1] = 0; hold[me] = 0
            :: else -> skip
            fi
        }
    }
}

/* ---- repairer (shmqd -> repair of a dead token) -------------------------- */

inline repair_wake(w)
{
#ifdef REPAIR_COND_WAKE
    ec_post(w)
#else
    /* always bump the epoch and wake: the dead process may have eaten a
     * wakeup (cleared the waiters bit and died before FUTEX_WAKE) */
    atomic { assert(ec[w] < 250); ec[w] = (ec[w] | 1) + 1 }
    futex_wake(w)
#endif
}

active proctype Repairer()
{
    byte p, i, wl, wp, wd, pv, j;

end_idle:
    do
    :: atomic {
           ndead > nrep ->
           p = 0;
           do
           :: p < NPROC && !(dead[p] && !rep[p]) -> p++
           :: else -> break
           od;
           assert(p < NPROC);
           rep[p] = 1; nrep++                   /* repair of p taken up */
       }
pass:
       i = 0;
       do
       :: i < NSLOT ->
           atomic { wl = slap[i]; wp = sph[i]; wd = sdlv[i]; j = sown[i] }
           if
           :: wp == WRITING && j == p ->
               /* CAS WRITING(lap, dead) -> SKIP(lap) */
               atomic {
                   if
                   :: slap[i] == wl && sph[i] == WRITING && sown[i] == p ->
                       sph[i] = SKIP; sown[i] = NONE;
                       mst[smsg[i]] = M_SKIPPED
                   :: else -> skip
                   fi
               }
           :: wp == LEASED && j == p ->
#ifndef RC_AFTER
               retry_count++;
               if :: restarts < MAXRESTART -> restarts++; goto pass :: true -> skip fi;
#endif
               /* CAS LEASED(lap, d, dead) -> RETRY(lap, d, NONE) */
               atomic {
                   if
                   :: slap[i] == wl && sph[i] == LEASED && sdlv[i] == wd && sown[i] == p ->
                       sph[i] = RETRY; sown[i] = NONE; pv = 1
                   :: else -> pv = 0
                   fi
               }
#ifdef RC_AFTER
               if :: restarts < MAXRESTART -> restarts++; pv = 0; goto pass :: true -> skip fi;
               if :: pv -> retry_count++ :: else -> skip fi;
#else
               if :: !pv -> retry_count-- :: else -> skip fi;
#endif
               pv = 0
           :: else -> skip
           fi;
           wl = 0; wp = 0; wd = 0; j = 0;
           i++
       :: else -> i = 0; break
       od;
       if :: restarts < MAXRESTART -> restarts++; goto pass :: true -> skip fi;
       repair_wake(NE);
       repair_wake(NF);
       /* a restarted supervisor runs the whole repair again */
       if :: restarts < MAXRESTART -> restarts++; goto pass :: true -> skip fi;
       p = 0
    od
}

/* ---- crashes ------------------------------------------------------------- */

#define KILLABLE(p) (p < NPROC && !kill[p] && !fin[p] && (p < NPROD || calive > 1))
#define KILL(p) atomic { crashes < MAXCRASH && KILLABLE(p) -> \
                         kill[p] = 1; crashes++; if :: p >= NPROD -> calive-- :: else -> skip fi }

active proctype Killer()
{
end_k:
    do
    :: KILL(0)
    :: KILL(1)
#if NPROC > 2
    :: KILL(2)
#endif
#if NPROC > 3
    :: KILL(3)
#endif
#if NPROC > 4
    :: KILL(4)
#endif
#if NPROC > 5
    :: KILL(5)
#endif
#if NPROC > 6
#error "at most 6 producers and consumers"
#endif
    od
}

/* ---- invariants checked in every state ----------------------------------- */

active proctype Monitor()
{
end_m:
    atomic {
        !(held[0] <= 1 && held[1] <= 1
#ifndef RC_AFTER
          && retry_count >= NRETRY
#endif
         ) -> assert(false)
    }
}
