import type { VNode } from "preact";
import type { Me } from "../api";
import type { Route } from "../route";

export interface PageProps {
  route: Route;
  me: Me;
  // admin (or an open Tollway): the page may offer changes; viewers only see
  canChange: boolean;
}

// One page of the portal: one module under pages/ and one entry in pages/index.ts.
export interface Page {
  id: string; // the #/<id> address
  title: string; // the nav entry
  view: (props: PageProps) => VNode | null;
}
