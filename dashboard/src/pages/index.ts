// The portal's pages, in nav order. To add one: write pages/<name>.tsx exporting a `Page`
// ({id, title, view}) and add it here — that is all (see dashboard/README.md).
import { ask } from "./ask";
import { errors } from "./errors";
import { guard } from "./guard";
import { keys } from "./keys";
import { models } from "./models";
import { overview } from "./overview";
import { projects } from "./projects";
import { providers } from "./providers";
import { requests } from "./requests";
import { routing } from "./routing";
import { sources } from "./sources";
import type { Page } from "./types";

export const PAGES: Page[] = [overview, requests, projects, sources, errors, models, keys, guard, routing, ask, providers];
