/* The request server of the component console-input: the loop an application's app_main ends
 * in, with the application's own table of requests. One request a line: the words
 * between spaces, the first naming the request, the rest its arguments; one reply line each
 * (the protocol: app/README.md and docs/guest-contract.md). "help" is the server's own: it
 * lists the table. */

#include "../internal.h"

#define MAX_WORDS  4                /* a request and up to three arguments */

/* A number in decimal, or in hexadecimal after "0x". Returns false if it is not one. */
static bool parse_number(const char *text, uint64_t *value)
{
    unsigned base = 10;
    if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text += 2;
    }
    if (*text == '\0')
        return false;
    for (*value = 0; *text != '\0'; text++) {
        unsigned digit;
        if (*text >= '0' && *text <= '9')
            digit = *text - '0';
        else if (base == 16 && *text >= 'a' && *text <= 'f')
            digit = *text - 'a' + 10;
        else if (base == 16 && *text >= 'A' && *text <= 'F')
            digit = *text - 'A' + 10;
        else
            return false;
        if (*value > (UINT64_MAX - digit) / base)
            return false;               /* does not fit in 64 bits */
        *value = *value * base + digit;
    }
    return true;
}

bool parse_numbers(const char *command, char **words, int count, uint64_t *values)
{
    for (int i = 0; i < count; i++) {
        if (!parse_number(words[i], &values[i])) {
            console_printf("error %s not a number: %s\n", command, words[i]);
            return false;
        }
    }
    return true;
}

/* The server's own request; run is never called: serve lists the table instead. */
static const struct command help = {"help", "help", 0, NULL};

static void list(const struct command *commands, size_t count)
{
    console_printf("ok help commands=%s", help.name);
    for (size_t i = 0; i < count; i++)
        console_printf(",%s", commands[i].name);
    console_printf("\n");
}

/* Split line at spaces, in place. Returns the number of words, at most MAX_WORDS + 1. */
static int split(char *line, char *words[MAX_WORDS + 1])
{
    int count = 0;
    for (;;) {
        while (*line == ' ')
            *line++ = '\0';
        if (*line == '\0' || count == MAX_WORDS + 1)
            return count;
        words[count++] = line;
        while (*line != ' ' && *line != '\0')
            line++;
    }
}

/* The request called name: help, or the table's; NULL if there is none. */
static const struct command *find(const char *name, const struct command *commands, size_t count)
{
    if (strcmp(name, help.name) == 0)
        return &help;
    for (const struct command *command = commands; command < commands + count; command++)
        if (strcmp(name, command->name) == 0)
            return command;
    return NULL;
}

static void serve(char *line, const struct command *commands, size_t count)
{
    char *words[MAX_WORDS + 1];
    int word_count = split(line, words);
    if (word_count == 0)
        return;                         /* an empty line is not a request: no reply */
    const struct command *command = find(words[0], commands, count);
    if (command == NULL)
        console_printf("error %s unknown command\n", words[0]);
    else if (word_count - 1 != command->argument_count)
        console_printf("error %s usage: %s\n", command->name, command->usage);
    else if (command == &help)
        list(commands, count);
    else
        command->run(words + 1);
}

void console_serve(const struct command *commands, size_t count, char *line, size_t size)
{
    for (;;) {
        console_printf("> ");
        console_read_line(line, size);
        serve(line, commands, count);
    }
}
