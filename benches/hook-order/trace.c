/* Which functions a hook runs, in the order it first runs them, from exec
 * to exit: benches/hook-order/run.sh feeds the names to the linker
 * (--symbol-ordering-file) so that the hook's code is contiguous.
 *
 * usage: trace SYMBOLS OUT PROGRAM ARGS...  (environment passed through)
 * SYMBOLS: `nm -n --defined-only` of PROGRAM's unstripped build. PROGRAM
 * runs under PTRACE_SINGLESTEP; each instruction's address (less the load
 * address of a PIE) is looked up; names not yet seen are appended to OUT. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct sym { unsigned long addr; char *name; int seen; };

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: trace SYMBOLS OUT PROGRAM ARGS...\n"); return 2; }
    FILE *in = fopen(argv[1], "r");
    if (!in) { perror(argv[1]); return 1; }
    size_t n = 0, cap = 1 << 14;
    struct sym *syms = malloc(cap * sizeof *syms);
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        char type, name[4000];
        unsigned long a;
        if (sscanf(line, "%lx %c %3999s", &a, &type, name) != 3 || (type != 't' && type != 'T' && type != 'W' && type != 'w')) continue;
        if (n == cap) syms = realloc(syms, (cap *= 2) * sizeof *syms);
        syms[n++] = (struct sym){a, strdup(name), 0};
    }
    fclose(in);
    FILE *out = fopen(argv[2], "a");
    if (!out) { perror(argv[2]); return 1; }
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execve(argv[3], argv + 3, environ);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    /* The first mapping is the executable's first segment. */
    char maps[64];
    snprintf(maps, sizeof maps, "/proc/%d/maps", pid);
    FILE *m = fopen(maps, "r");
    unsigned long base = 0;
    if (m && fgets(line, sizeof line, m)) base = strtoul(line, 0, 16);
    if (m) fclose(m);
    if (n && syms[0].addr >= base) base = 0; /* not a PIE: addresses are absolute */
    long steps = 0, named = 0;
    for (;;) {
        struct user_regs_struct r;
        if (ptrace(PTRACE_GETREGS, pid, 0, &r) == 0 && r.rip >= base) {
            unsigned long a = r.rip - base;
            size_t lo = 0, hi = n;
            while (lo < hi) { size_t mid = (lo + hi) / 2; if (syms[mid].addr <= a) lo = mid + 1; else hi = mid; }
            if (lo > 0 && !syms[lo - 1].seen) { syms[lo - 1].seen = 1; fprintf(out, "%s\n", syms[lo - 1].name); named++; }
        }
        if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) != 0) break;
        if (waitpid(pid, &st, 0) < 0 || WIFEXITED(st) || WIFSIGNALED(st)) break;
        steps++;
    }
    fprintf(stderr, "trace: %s: %ld instructions, %ld new functions\n", argv[3], steps, named);
    fclose(out);
    return 0;
}
