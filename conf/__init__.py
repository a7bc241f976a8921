"""ganrun's Hydra configs, shipped as the package ganrun.conf. Importing it (as Hydra does for
`pkg://ganrun.conf`) registers what the YAML needs: the typed schema and the resolvers."""

import ganrun.resolvers  # noqa: F401
import ganrun.schema  # noqa: F401
