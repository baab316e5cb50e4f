/*
 * config.c: where the client's credentials come from.  The key and the
 * secret code come from an option's file, the environment, the per-user
 * config file or a no-echo prompt, in that order; the user name from -u,
 * the config file or the login name; the password from -P, the config
 * file's password-file or a no-echo prompt, never from the command line.
 * The password itself is kept only as long as it takes to hash it.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <readpassphrase.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

#define CONFIG_LINE_MAX	1024

struct config {
	char	 path[PATH_MAX];
	char	 key[CONFIG_LINE_MAX];
	char	 secret[CONFIG_LINE_MAX];
	char	 user[CONFIG_LINE_MAX];
	char	 passfile[PATH_MAX];
};

static void
config_trim(char *s)
{
	size_t	 n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' ||
	    s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/*
 * Read the first line of a small file into out.  A file that can be read
 * by others is accepted with a warning when warn is set (it is the
 * user's own choice), refused otherwise.
 */
static int
config_firstline(const char *path, char *out, size_t size, const char *what)
{
	char		 buf[CONFIG_LINE_MAX + 2];
	struct stat	 st;
	ssize_t		 n;
	size_t		 len;
	char		*nl;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "relay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		fprintf(stderr, "relay: %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		fprintf(stderr, "relay: warning: %s (%s) can be read by "
		    "others; chmod 600 it\n", path, what);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n == -1) {
		fprintf(stderr, "relay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	if ((nl = strchr(buf, '\n')) != NULL)
		*nl = '\0';
	else if ((size_t)n == sizeof(buf) - 1) {
		fprintf(stderr, "relay: %s: first line too long\n", path);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (strlcpy(out, buf, size) >= size) {
		fprintf(stderr, "relay: %s: %s too long\n", path, what);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static int
config_path(char *out, size_t size)
{
	const char	*xdg, *home;
	int		 n;

	if ((xdg = getenv("XDG_CONFIG_HOME")) != NULL && xdg[0] == '/')
		n = snprintf(out, size, "%s/relay/config", xdg);
	else if ((home = getenv("HOME")) != NULL && home[0] != '\0')
		n = snprintf(out, size, "%s/.config/relay/config", home);
	else
		return -1;
	if (n < 0 || (size_t)n >= size)
		return -1;
	return 0;
}

/*
 * The per-user config file: "keyword value" lines, # comments.  A file
 * that holds the key or the secret code must be the user's own and
 * readable by nobody else, as ssh demands of private keys.
 */
static int
config_file(struct config *c)
{
	FILE		*fp;
	struct stat	 st;
	char		 line[CONFIG_LINE_MAX + 2];
	char		*kw, *val;
	size_t		 lineno = 0;
	int		 secret = 0, rc = 0;

	if (config_path(c->path, sizeof(c->path)) == -1)
		return 0;
	if ((fp = fopen(c->path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "relay: %s: %s\n", c->path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			fprintf(stderr, "relay: %s:%zu: line too long\n",
			    c->path, lineno);
			rc = -1;
			break;
		}
		config_trim(line);
		kw = line + strspn(line, " \t");
		if (*kw == '\0' || *kw == '#')
			continue;
		val = kw + strcspn(kw, " \t");
		if (*val != '\0')
			*val++ = '\0';
		val += strspn(val, " \t");
		if (*val == '\0') {
			fprintf(stderr, "relay: %s:%zu: %s needs a value\n",
			    c->path, lineno, kw);
			rc = -1;
			break;
		}
		if (strcmp(kw, "key") == 0) {
			secret = 1;
			(void)strlcpy(c->key, val, sizeof(c->key));
		} else if (strcmp(kw, "secret") == 0) {
			secret = 1;
			(void)strlcpy(c->secret, val, sizeof(c->secret));
		} else if (strcmp(kw, "user") == 0)
			(void)strlcpy(c->user, val, sizeof(c->user));
		else if (strcmp(kw, "password-file") == 0) {
			if (strlcpy(c->passfile, val, sizeof(c->passfile)) >=
			    sizeof(c->passfile)) {
				fprintf(stderr, "relay: %s:%zu: path too "
				    "long\n", c->path, lineno);
				rc = -1;
				break;
			}
		} else {
			fprintf(stderr, "relay: %s:%zu: unknown keyword %s\n",
			    c->path, lineno, kw);
			rc = -1;
			break;
		}
	}
	explicit_bzero(line, sizeof(line));
	if (rc == 0 && ferror(fp)) {
		fprintf(stderr, "relay: %s: read error\n", c->path);
		rc = -1;
	}
	if (rc == 0 && secret) {
		if (fstat(fileno(fp), &st) == -1) {
			fprintf(stderr, "relay: %s: %s\n", c->path,
			    strerror(errno));
			rc = -1;
		} else if (st.st_uid != getuid() ||
		    (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
			fprintf(stderr, "relay: %s holds a key or a secret "
			    "code, so it must be yours and mode 0600; "
			    "refusing to use it\n", c->path);
			rc = -1;
		}
	}
	fclose(fp);
	return rc;
}

/* One credential: the file of an option, the environment, config, prompt. */
static int
config_credential(char *out, size_t size, const char *file, const char *env,
    const char *conf, const char *prompt, const char *what)
{
	char	 buf[CONFIG_LINE_MAX];
	char	*v;

	if (file != NULL)
		return config_firstline(file, out, size, what);
	if ((v = getenv(env)) != NULL && v[0] != '\0') {
		if (strlcpy(out, v, size) >= size) {
			fprintf(stderr, "relay: %s: %s too long\n", env, what);
			return -1;
		}
		explicit_bzero(v, strlen(v));
		(void)unsetenv(env);
		return 0;
	}
	if (conf[0] != '\0') {
		if (strlcpy(out, conf, size) >= size) {
			fprintf(stderr, "relay: config: %s too long\n", what);
			return -1;
		}
		return 0;
	}
	if (readpassphrase(prompt, buf, sizeof(buf),
	    RPP_ECHO_OFF | RPP_REQUIRE_TTY) == NULL) {
		fprintf(stderr, "relay: no %s: give it with an option, the "
		    "environment or the config file (see relay(1))\n", what);
		return -1;
	}
	config_trim(buf);
	if (strlcpy(out, buf, size) >= size) {
		fprintf(stderr, "relay: %s too long\n", what);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static int
config_user(struct options *o, const char *opt, const char *conf)
{
	const char	*u = opt;
	struct passwd	*pw;

	if (u == NULL && conf[0] != '\0')
		u = conf;
	if (u == NULL && (u = getenv("USER")) != NULL && u[0] == '\0')
		u = NULL;
	if (u == NULL)
		u = getlogin();
	if (u == NULL && (pw = getpwuid(getuid())) != NULL)
		u = pw->pw_name;
	if (u == NULL) {
		fprintf(stderr, "relay: who are you? use -u USER\n");
		return -1;
	}
	if (!proto_valid_user(u, strlen(u)) ||
	    strlcpy(o->user, u, sizeof(o->user)) >= sizeof(o->user)) {
		fprintf(stderr, "relay: %s: not a valid user name\n", u);
		return -1;
	}
	return 0;
}

static int
config_password(struct options *o, const char *file, const char *conf)
{
	char	 pw[PASSWORD_MAX];
	char	 prompt[USER_MAX + 64];
	int	 rc;

	if (file == NULL && conf[0] != '\0')
		file = conf;
	if (file != NULL)
		rc = config_firstline(file, pw, sizeof(pw), "password");
	else {
		(void)snprintf(prompt, sizeof(prompt), "Password for %s: ",
		    o->user);
		if (readpassphrase(prompt, pw, sizeof(pw),
		    RPP_ECHO_OFF | RPP_REQUIRE_TTY) == NULL) {
			fprintf(stderr, "relay: no password: without a "
			    "terminal use -P FILE (see relay(1))\n");
			rc = -1;
		} else
			rc = 0;
	}
	if (rc == 0)
		md5_hex(pw, strlen(pw), o->password_md5);
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

/*
 * Fill in o's user, key, secret and password hash.  Prints why and
 * returns -1 when one cannot be had.
 */
int
config_load(struct options *o, const char *keyfile, const char *secretfile,
    const char *passfile, const char *user)
{
	struct config	 c;
	unsigned char	 raw[FERNET_KEY_LEN];
	char		 head[HEAD_LEN + 1];
	const char	*errstr = NULL;
	int		 rc = -1;

	memset(&c, 0, sizeof(c));
	if (config_file(&c) == -1)
		goto done;
	if (config_user(o, user, c.user) == -1)
		goto done;
	if (config_credential(o->key, sizeof(o->key), keyfile, "RELAY_KEY",
	    c.key, "Key (paste it): ", "key") == -1)
		goto done;
	if (fernet_key_parse(o->key, strlen(o->key), raw) != 0) {
		fprintf(stderr, "relay: the key is not a valid key (44 "
		    "characters of URL-safe base64)\n");
		goto done;
	}
	explicit_bzero(raw, sizeof(raw));
	if (config_credential(o->secret, sizeof(o->secret), secretfile,
	    "RELAY_SECRET", c.secret, "Secret code: ", "secret code") == -1)
		goto done;
	if (secret_head(o->secret, head, &errstr) != 0) {
		fprintf(stderr, "relay: secret code: %s\n",
		    errstr != NULL ? errstr : "must be 4 to 18 digits");
		goto done;
	}
	if (config_password(o, passfile, c.passfile) == -1)
		goto done;
	rc = 0;
done:
	explicit_bzero(&c, sizeof(c));
	return rc;
}

void
config_wipe(struct options *o)
{
	explicit_bzero(o->key, sizeof(o->key));
	explicit_bzero(o->secret, sizeof(o->secret));
	explicit_bzero(o->password_md5, sizeof(o->password_md5));
}
